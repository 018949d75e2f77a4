"""Which agents a rollout targets and in which wave each one is updated. Pure.

targets = selector ∩ regions ∩ residency. Agents the selection matches but residency or
a cordon keeps out are *excluded*, each with a reason, so the rollout's status can count
them; agents the selection does not match are simply not part of the rollout. Each target
belongs to the first wave (in spec order) whose regions/selector match it; waves are
resolved against their own size (`maxUnavailable`, `maxFailed`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from edgewave_operator.planning import quantities, residency, views

DEFAULT_WAVE = "all"


class Selector(Protocol):
    """A label selector (`edgewave_api.selectors.LabelSelector` in the operator)."""

    def matches(self, labels: Mapping[str, str]) -> bool: ...


class Exclusion(StrEnum):
    """Why a selected agent is not a target (residency reasons plus these)."""

    CORDONED = "Cordoned"
    NO_WAVE = "NotInAnyWave"
    NO_COMPATIBLE_BACKEND = "NoCompatibleBackend"
    AGENT_BUILD_FAILED = "AgentBuildFailed"


@dataclass(frozen=True, slots=True)
class Excluded:
    agent: str
    region: str
    reason: str  # a residency.Reason or an Exclusion value
    message: str
    source: str = ""


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """`spec.targets`: regions and/or a label selector; both absent selects every agent."""

    regions: tuple[str, ...] = ()
    selector: Selector | None = None

    def selects(self, agent: views.AgentView) -> bool:
        if self.regions and agent.region not in self.regions:
            return False
        return self.selector is None or self.selector.matches(agent.labels)


@dataclass(frozen=True, slots=True)
class WaveSpec:
    """One entry of `spec.strategy.waves`."""

    name: str
    regions: tuple[str, ...] = ()
    selector: Selector | None = None
    max_unavailable: quantities.IntOrPercent = 1
    max_failed: quantities.IntOrPercent = 0

    def selects(self, agent: views.AgentView) -> bool:
        return TargetSpec(regions=self.regions, selector=self.selector).selects(agent)


@dataclass(frozen=True, slots=True)
class Wave:
    """A wave resolved against the fleet: its agents by name and its limits as counts."""

    name: str
    index: int
    agents: tuple[views.AgentView, ...]
    max_unavailable: int
    max_failed: int

    @property
    def agent_names(self) -> tuple[str, ...]:
        return tuple(agent.name for agent in self.agents)


@dataclass(frozen=True, slots=True)
class Targeting:
    targets: tuple[views.AgentView, ...]
    excluded: tuple[Excluded, ...]

    def excluded_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(item.reason for item in self.excluded).items()))


@dataclass(frozen=True, slots=True)
class Eligibility:
    """The one rule for "may this agent receive `version` of `model` now?".

    Used to pick targets and again right before an agent is touched (the executor's last
    check, on the agent as it is then): residency first, then the cordon. A cordoned agent
    that already serves `version` stays eligible (nothing new reaches it).
    """

    rules: residency.ResidencyRules
    model: str
    version: str

    def refusal(self, agent: views.AgentView) -> Excluded | None:
        """Why `agent` must not receive the version, or None."""
        violation = self.rules.violation(agent)
        if violation is not None:
            return Excluded(
                agent=agent.name,
                region=agent.region,
                reason=violation.reason.value,
                message=violation.message,
                source=violation.source,
            )
        if agent.cordoned and agent.active_version(self.model) != self.version:
            return Excluded(
                agent=agent.name,
                region=agent.region,
                reason=Exclusion.CORDONED.value,
                message=f"agent {agent.name} is cordoned; uncordon it to update it",
            )
        return None

    def why_not(self, agent: views.AgentView | None) -> str | None:
        """`refusal`'s message, for an agent that may have been deleted meanwhile (None)."""
        if agent is None:
            return "the EdgeAgent was deleted"
        refused = self.refusal(agent)
        return refused.message if refused else None


def select_targets(
    *,
    spec: TargetSpec,
    rules: residency.ResidencyRules,
    fleet: Iterable[views.AgentView],
    model: str,
    version: str,
) -> Targeting:
    """The targets of a rollout of `model` at `version`, and the selected-but-excluded.

    Every selected agent is judged by `Eligibility` (residency, then cordon).
    """
    eligibility = Eligibility(rules=rules, model=model, version=version)
    targets: list[views.AgentView] = []
    excluded: list[Excluded] = []
    for agent in sorted(fleet, key=lambda a: a.name):
        if not spec.selects(agent):
            continue
        refused = eligibility.refusal(agent)
        if refused is not None:
            excluded.append(refused)
        else:
            targets.append(agent)
    return Targeting(targets=tuple(targets), excluded=tuple(excluded))


def assign_waves(
    *,
    waves: Sequence[WaveSpec],
    targeting: Targeting,
    default_max_unavailable: quantities.IntOrPercent = "25%",
) -> tuple[tuple[Wave, ...], Targeting]:
    """Split the targets into waves (spec order); unmatched targets become excluded.

    With no waves in the spec, every target is in one wave named "all".
    """
    specs = list(waves) or [WaveSpec(name=DEFAULT_WAVE, max_unavailable=default_max_unavailable)]
    members: list[list[views.AgentView]] = [[] for _ in specs]
    unassigned: list[Excluded] = []
    for agent in targeting.targets:
        index = next((i for i, wave in enumerate(specs) if wave.selects(agent)), None)
        if index is None:
            unassigned.append(
                Excluded(
                    agent=agent.name,
                    region=agent.region,
                    reason=Exclusion.NO_WAVE.value,
                    message=f"agent {agent.name} (region {agent.region}) matches no wave",
                )
            )
        else:
            members[index].append(agent)
    resolved = tuple(
        Wave(
            name=spec.name,
            index=index,
            agents=tuple(agents),
            max_unavailable=quantities.max_unavailable(spec.max_unavailable, total=len(agents)),
            max_failed=quantities.max_failed(spec.max_failed, total=len(agents)),
        )
        for index, (spec, agents) in enumerate(zip(specs, members, strict=True))
    )
    assigned = {agent.name for wave in resolved for agent in wave.agents}
    remaining = Targeting(
        targets=tuple(agent for agent in targeting.targets if agent.name in assigned),
        excluded=targeting.excluded + tuple(unassigned),
    )
    return resolved, remaining


def exclude(targeting_: Targeting, *, refused: Mapping[str, str], reason: str) -> Targeting:
    """`targeting_` with the `refused` agents (name -> message) moved to the excluded."""
    if not refused:
        return targeting_
    moved = tuple(
        Excluded(agent=a.name, region=a.region, reason=reason, message=refused[a.name])
        for a in targeting_.targets
        if a.name in refused
    )
    return Targeting(
        targets=tuple(a for a in targeting_.targets if a.name not in refused),
        excluded=targeting_.excluded + moved,
    )
