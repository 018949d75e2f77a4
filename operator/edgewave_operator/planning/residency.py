"""Data-residency decisions: may this agent hold this model, and what must be evicted. Pure.

A rollout's residency is the conjunction of its own `spec.residency` and of every
ResidencyPolicy that selects it; each is a `ResidencyRule` named by its source so every
decision can say which policy made it. An agent is compliant only when everything known
about its location agrees (EdgeAgent spec, region label, what the agent itself reports)
and that location is allowed by every rule. An unknown jurisdiction never satisfies a
rule that restricts jurisdictions: a regulated team must be able to prove where a model
is, not assume it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from edgewave_operator.planning import views


class Reason(StrEnum):
    """Why an agent may not hold a model (also used as Event and status reasons)."""

    REGION_MISMATCH = "ReportedRegionMismatch"
    LABEL_MISMATCH = "RegionLabelMismatch"
    JURISDICTION_MISMATCH = "ReportedJurisdictionMismatch"
    REGION_NOT_ALLOWED = "RegionNotAllowed"
    REGION_DENIED = "RegionDenied"
    JURISDICTION_NOT_ALLOWED = "JurisdictionNotAllowed"


@dataclass(frozen=True, slots=True)
class ResidencyRule:
    """One source of residency constraints (`spec.residency`, or a ResidencyPolicy).

    `None` for an allow-list means "unrestricted"; an empty frozenset allows nothing.
    """

    source: str
    allowed_regions: frozenset[str] | None = None
    allowed_jurisdictions: frozenset[str] | None = None
    denied_regions: frozenset[str] = frozenset()
    policy: str | None = None
    """The ResidencyPolicy's name when this rule is an existing policy (None otherwise)."""

    @property
    def restricts(self) -> bool:
        return (
            self.allowed_regions is not None
            or self.allowed_jurisdictions is not None
            or bool(self.denied_regions)
        )


POLICY_KIND = "ResidencyPolicy"


def policy_source(name: str, *, missing: bool = False) -> str:
    """How a ResidencyPolicy is named as a rule's source (`ResidencyPolicy/<name>`)."""
    return f"{POLICY_KIND}/{name}" + (" (not found)" if missing else "")


@dataclass(frozen=True, slots=True)
class Violation:
    """Why one agent is not a compliant place for a model; `source` names the rule."""

    reason: Reason
    message: str
    source: str


@dataclass(frozen=True, slots=True)
class ResidencyRules:
    """All rules that apply to one rollout, checked together."""

    rules: tuple[ResidencyRule, ...] = ()

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(rule.source for rule in self.rules if rule.restricts)

    @property
    def policies(self) -> tuple[str, ...]:
        """Names of the existing ResidencyPolicies among the restricting rules."""
        return tuple(rule.policy for rule in self.rules if rule.restricts and rule.policy)

    def violation(self, agent: views.AgentView) -> Violation | None:
        """The first reason `agent` may not hold a model under these rules, or None."""
        mismatch = location_mismatch(agent)
        if mismatch is not None:
            return mismatch
        for rule in self.rules:
            found = _rule_violation(rule, agent)
            if found is not None:
                return found
        return None

    def allowed_regions(self) -> frozenset[str] | None:
        """The regions every rule allows (None: no rule restricts regions)."""
        allowed: frozenset[str] | None = None
        for rule in self.rules:
            if rule.allowed_regions is not None:
                allowed = (
                    rule.allowed_regions if allowed is None else allowed & rule.allowed_regions
                )
        denied = frozenset().union(*(rule.denied_regions for rule in self.rules))
        return None if allowed is None else allowed - denied


def location_mismatch(agent: views.AgentView) -> Violation | None:
    """A disagreement between what the spec, the labels and the agent say about location.

    Such an agent is non-compliant under every policy (and without one): nothing can be
    proven about where it is, so it receives nothing and holds nothing.
    """
    if agent.label_region is not None and agent.label_region != agent.region:
        return Violation(
            reason=Reason.LABEL_MISMATCH,
            message=(
                f"agent {agent.name}: region label says {agent.label_region!r} but its "
                f"spec says {agent.region!r}; make them agree"
            ),
            source="EdgeAgent",
        )
    if agent.reported_region is not None and agent.reported_region != agent.region:
        return Violation(
            reason=Reason.REGION_MISMATCH,
            message=(
                f"agent {agent.name} reports region {agent.reported_region!r} but its "
                f"EdgeAgent spec says {agent.region!r}; fix the agent's configuration or "
                "the EdgeAgent"
            ),
            source="EdgeAgent",
        )
    if (
        agent.reported_jurisdiction is not None
        and agent.reported_jurisdiction != agent.jurisdiction
    ):
        return Violation(
            reason=Reason.JURISDICTION_MISMATCH,
            message=(
                f"agent {agent.name} reports jurisdiction {agent.reported_jurisdiction!r} "
                f"but its EdgeAgent spec says {agent.jurisdiction!r}; fix the agent's "
                "configuration or the EdgeAgent"
            ),
            source="EdgeAgent",
        )
    return None


def _rule_violation(rule: ResidencyRule, agent: views.AgentView) -> Violation | None:
    if agent.region in rule.denied_regions:
        return Violation(
            reason=Reason.REGION_DENIED,
            message=f"region {agent.region!r} of agent {agent.name} is denied by {rule.source}",
            source=rule.source,
        )
    if rule.allowed_regions is not None and agent.region not in rule.allowed_regions:
        allowed = ", ".join(sorted(rule.allowed_regions)) or "none"
        return Violation(
            reason=Reason.REGION_NOT_ALLOWED,
            message=(
                f"region {agent.region!r} of agent {agent.name} is not allowed by "
                f"{rule.source} (allowed: {allowed})"
            ),
            source=rule.source,
        )
    if (
        rule.allowed_jurisdictions is not None
        and agent.jurisdiction not in rule.allowed_jurisdictions
    ):
        allowed = ", ".join(sorted(rule.allowed_jurisdictions)) or "none"
        jurisdiction = agent.jurisdiction or "unknown"
        return Violation(
            reason=Reason.JURISDICTION_NOT_ALLOWED,
            message=(
                f"jurisdiction {jurisdiction!r} of agent {agent.name} is not allowed by "
                f"{rule.source} (allowed: {allowed})"
            ),
            source=rule.source,
        )
    return None


@dataclass(frozen=True, slots=True)
class Eviction:
    """Remove `versions` of `model` from `agent`: it may no longer hold them."""

    agent: str
    region: str
    model: str
    versions: tuple[str, ...]
    violation: Violation


def evictions(
    *, model: str, rules: ResidencyRules, fleet: Iterable[views.AgentView]
) -> tuple[Eviction, ...]:
    """Every agent holding any version of `model` where it may no longer be, by name."""
    found: list[Eviction] = []
    for agent in sorted(fleet, key=lambda a: a.name):
        held = agent.versions_of(model)
        if not held:
            continue
        violation = rules.violation(agent)
        if violation is not None:
            found.append(
                Eviction(
                    agent=agent.name,
                    region=agent.region,
                    model=model,
                    versions=tuple(sorted({h.version for h in held})),
                    violation=violation,
                )
            )
    return tuple(found)
