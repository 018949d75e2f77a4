"""The residency report: per rollout, where each version of its model is, and what allowed it.

Built from what the agents say they hold (EdgeAgent `status.models`), the rollouts and the
policies; every placement is judged against the rules that bind its rollout, with the
agent's own declared region and jurisdiction, exactly as admission judges named regions.
A placement no rule forbids lists the rules that allowed it; one a rule forbids says why
(it is awaiting eviction, or something placed it behind the operator's back). Pure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from edgewave_api import edgeagent, modelrollout, residencypolicy
from edgewave_operator.admission import objects, rules

NO_RULE = "no residency rule"


@dataclass(frozen=True, slots=True)
class Placement:
    """Agents in one region (and jurisdiction) holding one version of a rollout's model."""

    version: str
    region: str
    jurisdiction: str | None
    agents: tuple[str, ...]
    states: tuple[str, ...]
    allowed_by: tuple[str, ...]
    violations: tuple[str, ...]

    @property
    def compliant(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "region": self.region,
            "jurisdiction": self.jurisdiction,
            "agents": list(self.agents),
            "states": list(self.states),
            "allowedBy": list(self.allowed_by),
            "compliant": self.compliant,
            "violations": list(self.violations),
        }


@dataclass(frozen=True, slots=True)
class RolloutReport:
    namespace: str
    name: str
    model: str
    version: str
    rules: tuple[str, ...]
    placements: tuple[Placement, ...]

    @property
    def qualified(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def compliant(self) -> bool:
        return all(p.compliant for p in self.placements)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rollout": self.qualified,
            "model": self.model,
            "version": self.version,
            "rules": list(self.rules),
            "compliant": self.compliant,
            "placements": [p.as_dict() for p in self.placements],
        }


def build(
    *,
    rollouts: Iterable[modelrollout.ModelRollout],
    policies: Sequence[residencypolicy.ResidencyPolicy],
    agents: Sequence[edgeagent.EdgeAgent],
) -> list[RolloutReport]:
    """One report per rollout, sorted by namespace and name."""
    reports = []
    for rollout in sorted(
        rollouts, key=lambda r: (r.metadata.namespace or "", r.metadata.name or "")
    ):
        reports.append(_report(rollout, policies=policies, agents=agents))
    return reports


def _report(
    rollout: modelrollout.ModelRollout,
    *,
    policies: Sequence[residencypolicy.ResidencyPolicy],
    agents: Sequence[edgeagent.EdgeAgent],
) -> RolloutReport:
    namespace, name = rollout.metadata.namespace or "", rollout.metadata.name or ""
    model = rollout.spec.model.name
    bound, missing = objects.bindings(rollout, policies)
    groups: dict[tuple[str, str, str | None], list[tuple[str, str]]] = defaultdict(list)
    for agent in agents:
        for held in agent.status.models if agent.status else []:
            if held.name != model or held.rollout not in (None, f"{namespace}/{name}"):
                continue
            key = (held.version, agent.spec.region, agent.spec.jurisdiction)
            groups[key].append((agent.metadata.name or "", held.state.value))
    placements = []
    for (version, region, jurisdiction), members in sorted(
        groups.items(), key=lambda g: (g[0][0], g[0][1], g[0][2] or "")
    ):
        refusals = [str(v) for v in missing]
        allowed_by = []
        for binding in bound:
            reason = rules.refusal(
                binding.rule, region=region, jurisdictions=(jurisdiction,) if jurisdiction else ()
            )
            if reason is None:
                allowed_by.append(binding.rule.source)
            else:
                refusals.append(reason)
        members.sort()
        placements.append(
            Placement(
                version=version,
                region=region,
                jurisdiction=jurisdiction,
                agents=tuple(agent for agent, _ in members),
                states=tuple(state for _, state in members),
                allowed_by=tuple(allowed_by) if bound else (NO_RULE,),
                violations=tuple(refusals),
            )
        )
    return RolloutReport(
        namespace=namespace,
        name=name,
        model=model,
        version=rollout.spec.model.version,
        rules=tuple(b.rule.source for b in bound),
        placements=tuple(placements),
    )


TABLE_COLUMNS = ("ROLLOUT", "MODEL", "VERSION", "REGION", "AGENTS", "ALLOWED BY")


def rows(reports: Iterable[RolloutReport]) -> list[tuple[str, ...]]:
    """Table rows: one per placement; a rollout held nowhere gets one row of dashes."""
    table: list[tuple[str, ...]] = []
    for report in reports:
        if not report.placements:
            table.append((report.qualified, report.model, "-", "-", "-", "-"))
        for p in report.placements:
            where = p.region if p.jurisdiction is None else f"{p.region} ({p.jurisdiction})"
            verdict = (
                ", ".join(p.allowed_by)
                if p.compliant
                else "NOT ALLOWED: " + "; ".join(p.violations)
            )
            table.append(
                (report.qualified, report.model, p.version, where, ", ".join(p.agents), verdict)
            )
    return table
