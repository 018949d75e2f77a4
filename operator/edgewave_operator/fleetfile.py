"""A declared fleet (`fleet: NAME`, see docs/cli/fleet.yaml), for `edgewave plan --fleet`.

A fleet file names GPU classes (GPU, runtimes, labels) and, per region, the agents of each
class. Loading it yields EdgeAgent objects whose status is what such agents would report
to the operator's `Describe`, so a dry run plans against a declared GPU fleet exactly as
it would against the live one. A fleet file is deliberately not shaped like a Kubernetes
object (no apiVersion, no kind): it is input to the command line only, and a directory of
manifests that holds one must still apply. Parsing is pure; `load` only reads the file. Problems are
reported as one line per mistake, naming the file and the field.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import ConfigDict, Field, ValidationError, model_validator

from edgewave_api import conditions, edgeagent, meta
from edgewave_api.errors import PermanentError
from edgewave_api.names import DnsLabel, DnsSubdomain, RegionName

MARKER = "fleet"
"""The top-level key that names a fleet file (its value is the fleet's name)."""
EXAMPLE = "docs/cli/fleet.yaml"
DECLARED_REASON = "Declared"
"""Reason on the conditions of a declared agent: it was never asked, only described."""


class FleetError(PermanentError):
    """The fleet file is unreadable or invalid; the message says where and what to fix."""


class _Model(meta.ApiModel):
    model_config = ConfigDict(extra="forbid")


class GpuClass(_Model):
    """A kind of edge node: its GPU, the runtimes it has and labels its agents carry."""

    name: DnsLabel
    gpu: edgeagent.GpuInfo | None = None
    runtimes: Annotated[list[edgeagent.RuntimeInfo], Field(min_length=1)]
    labels: dict[str, str] = Field(default_factory=dict)


class DeclaredAgent(_Model):
    name: DnsSubdomain
    gpu_class: DnsLabel = Field(alias="class")
    zone: DnsLabel | None = None
    cordoned: bool = False
    labels: dict[str, str] = Field(default_factory=dict)


class Site(_Model):
    """The agents of one region (all in one jurisdiction)."""

    region: RegionName
    jurisdiction: str | None = None
    agents: Annotated[list[DeclaredAgent], Field(min_length=1)]


class Fleet(_Model):
    fleet: DnsLabel
    """The fleet's name."""
    labels: dict[str, str] = Field(default_factory=dict)
    classes: Annotated[list[GpuClass], Field(min_length=1)]
    regions: Annotated[list[Site], Field(min_length=1)]

    @model_validator(mode="after")
    def _references(self) -> Fleet:
        classes = [c.name for c in self.classes]
        if len(set(classes)) != len(classes):
            raise ValueError("class names must be unique")
        names: set[str] = set()
        for site in self.regions:
            for agent in site.agents:
                if agent.gpu_class not in classes:
                    raise ValueError(
                        f"agent {agent.name} names class {agent.gpu_class!r}, which is not"
                        f" declared (classes: {', '.join(classes)})"
                    )
                if agent.name in names:
                    raise ValueError(f"agent name {agent.name} appears twice")
                names.add(agent.name)
        return self


def agents(fleet: Fleet, *, now: datetime.datetime) -> tuple[edgeagent.EdgeAgent, ...]:
    """The fleet's agents as EdgeAgents with the status they would report, by name."""
    classes = {c.name: c for c in fleet.classes}
    found: list[edgeagent.EdgeAgent] = []
    for site in fleet.regions:
        for declared in site.agents:
            gpu_class = classes[declared.gpu_class]
            found.append(
                edgeagent.EdgeAgent(
                    metadata=meta.ObjectMeta(
                        name=declared.name,
                        labels={**fleet.labels, **gpu_class.labels, **declared.labels},
                    ),
                    spec=edgeagent.EdgeAgentSpec(
                        endpoint=f"{declared.name}.declared:7443",
                        region=site.region,
                        zone=declared.zone,
                        jurisdiction=site.jurisdiction,
                        cordoned=declared.cordoned,
                    ),
                    status=edgeagent.EdgeAgentStatus(
                        gpu=gpu_class.gpu,
                        runtimes=list(gpu_class.runtimes),
                        reported_region=site.region,
                        reported_jurisdiction=site.jurisdiction,
                        conditions=_declared_conditions(now),
                    ),
                )
            )
    return tuple(sorted(found, key=lambda a: a.metadata.name or ""))


def _declared_conditions(now: datetime.datetime) -> list[conditions.Condition]:
    found: list[conditions.Condition] = []
    for kind in (edgeagent.AgentConditionType.REACHABLE, edgeagent.AgentConditionType.READY):
        found = conditions.set_condition(
            found,
            type=kind,
            status=True,
            reason=DECLARED_REASON,
            message="declared in a fleet file, not observed",
            observed_generation=None,
            now=now,
        )
    return found


def parse(text: str, *, source: str) -> Fleet:
    """The fleet in `text` (YAML); `source` names it in error messages."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise FleetError(f"{source} is not valid YAML: {error}".replace("\n", " ")) from None
    if isinstance(document, dict) and "kind" in document:
        raise FleetError(
            f"{source} is a Kubernetes manifest (kind {document['kind']}), not a fleet file:"
            f" a fleet file starts with `{MARKER}: NAME` (see {EXAMPLE})"
        )
    if not isinstance(document, dict) or MARKER not in document:
        raise FleetError(f"{source} is not a fleet file: it needs `{MARKER}: NAME` (see {EXAMPLE})")
    try:
        return Fleet.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or '(top level)'}: {item['msg']}"
            for item in error.errors()
        )
        raise FleetError(f"{source}: {problems}") from None


def load(path: Path, *, now: datetime.datetime) -> tuple[edgeagent.EdgeAgent, ...]:
    """The agents declared in the fleet file at `path`."""
    try:
        text = path.read_text()
    except OSError as error:
        raise FleetError(f"cannot read fleet file {path}: {error.strerror}") from None
    return agents(parse(text, source=str(path)), now=now)
