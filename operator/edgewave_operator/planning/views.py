"""The planner's own view of agents and models, independent of kopf bodies. Pure.

The operator maps live objects (EdgeAgent spec and status, what the agent last answered
to `Describe`) into these small frozen types, so planning is tested with plain values
and never depends on how the API models or the gRPC messages are shaped.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field

from edgewave_api import edgeagent

ModelState = edgeagent.HeldModelState
"""What an agent says about one version of a model it holds: the API's vocabulary, so the
planner, the EdgeAgent status and the wire mapping (`agents.describing`) share one set of
states. `Standby` is loaded and instantly restorable; `Staged` is only on disk."""


@dataclass(frozen=True, slots=True)
class HeldModel:
    """One version of one model held by an agent."""

    name: str
    version: str
    digest: str = ""
    backend: str = ""
    state: ModelState = ModelState.STANDBY
    owner: str | None = None
    """The ModelRollout (`namespace/name`) the agent holds it for; None: none recorded."""

    @property
    def active(self) -> bool:
        return self.state is ModelState.ACTIVE


@dataclass(frozen=True, slots=True)
class AgentView:
    """An edge agent as the planner needs it.

    `region`/`jurisdiction` come from the EdgeAgent spec; `label_region` from its region
    label (if any); `reported_*` from the agent's own `Describe` answer (None until the
    operator has heard from it). `observed` says the models list is what the agent said
    in this operator process's lifetime, not a possibly stale status written earlier.
    `reachable`: the agent has a live gateway session (or, dialled directly, answered);
    `unreachable_since`: when the operator last lost it (None while reachable, and for an
    agent it has never reached).
    """

    name: str
    region: str
    jurisdiction: str = ""
    zone: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    cordoned: bool = False
    reachable: bool = True
    unreachable_since: datetime.datetime | None = None
    """When the operator lost the agent (None while it is reachable, or when unknown)."""
    observed: bool = True
    label_region: str | None = None
    reported_region: str | None = None
    reported_jurisdiction: str | None = None
    models: tuple[HeldModel, ...] = ()

    def versions_of(self, model: str) -> tuple[HeldModel, ...]:
        return tuple(held for held in self.models if held.name == model)

    def active(self, model: str) -> HeldModel | None:
        return next((held for held in self.versions_of(model) if held.active), None)

    def active_version(self, model: str) -> str | None:
        held = self.active(model)
        return held.version if held else None

    def holds(self, model: str, version: str) -> bool:
        return any(held.version == version for held in self.versions_of(model))


@dataclass(frozen=True, slots=True)
class EngineRef:
    """The artifact one agent must run: what the compiler built for its build key."""

    digest: str
    backend: str
    size: int = 0
    local: bool = False
    """Built on the agent itself: already in its store, nothing to push."""


def utc(value: datetime.datetime) -> datetime.datetime:
    """`value` as an aware UTC datetime (naive values are taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC)
