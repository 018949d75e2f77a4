"""Residency rules at admission: may a rollout name these regions, is a policy coherent?

Admission (the webhook) and the residency report ask these questions of regions; planning
(`edgewave_operator.planning.residency`) asks the per-agent twin. Both use the same
`ResidencyRule` values, so a region admission accepts is one planning can target and vice
versa. Pure: values in, verdicts out; no Kubernetes client, no kopf.

Semantics, in one place:

* A region passes a rule (a rollout's `spec.residency`, or a ResidencyPolicy) when it
  passes every constraint the rule states: it is in `allowedRegions` (when stated), every
  jurisdiction it belongs to is in `allowedJurisdictions` (when stated), and it is not in
  `deniedRegions`. Stating both allow lists therefore means their intersection.
* A region's jurisdictions are what the EdgeAgents in that region declare in
  `spec.jurisdiction` (`jurisdictions_by_region`). Admission refuses a region on
  jurisdiction only where the jurisdiction is known; a region nobody has declared yet
  passes with a warning (`unknown_jurisdictions`), since planning checks every agent's
  own declared jurisdiction before anything reaches it (and an agent that declares none
  never passes a jurisdiction rule). The report judges agents, so it is strict.
* A region must pass every rule that binds the rollout (`objects.bindings` says which).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from edgewave_operator.planning import residency

OWN_SOURCE = "spec.residency"


def policy_source(name: str) -> str:
    """How admission messages name a ResidencyPolicy."""
    return f'ResidencyPolicy "{name}"'


@dataclass(frozen=True, slots=True)
class Binding:
    """A rule that binds a rollout, and the policy it came from (None: spec.residency)."""

    rule: residency.ResidencyRule
    policy: str | None = None


@dataclass(frozen=True, slots=True)
class RegionRef:
    """A region a rollout names explicitly, with the field path that names it."""

    path: str
    region: str


@dataclass(frozen=True, slots=True)
class Violation:
    """A reason to refuse an object: the field at fault, and a message a person can act on.

    `policy` is the ResidencyPolicy's name when one is at stake (None for spec.residency).
    """

    path: str
    message: str
    region: str | None = None
    policy: str | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def jurisdictions_by_region(
    agents: Iterable[tuple[str, str | None]],
) -> dict[str, frozenset[str]]:
    """Region -> the jurisdictions its EdgeAgents declare, from (region, jurisdiction) pairs.

    Agents that declare no jurisdiction add nothing; agents of one region that disagree
    leave the region in several jurisdictions, and it must be allowed in all of them.
    """
    known: dict[str, set[str]] = {}
    for region, jurisdiction in agents:
        bucket = known.setdefault(region, set())
        if jurisdiction:
            bucket.add(jurisdiction)
    return {region: frozenset(values) for region, values in known.items()}


def refusal(
    rule: residency.ResidencyRule,
    *,
    region: str,
    jurisdictions: Collection[str],
    strict: bool = True,
) -> str | None:
    """Why `rule` does not allow `region` (in `jurisdictions`), or None if it does.

    With `strict=False` an empty `jurisdictions` (unknown) passes a jurisdiction rule.
    """
    if region in rule.denied_regions:
        return (
            f'region "{region}" is denied by {rule.source} '
            f"(denied: {_listing(rule.denied_regions)})"
        )
    if rule.allowed_regions is not None and region not in rule.allowed_regions:
        return (
            f'region "{region}" is not allowed by {rule.source} '
            f"(allowed: {_listing(rule.allowed_regions)})"
        )
    if rule.allowed_jurisdictions is not None:
        allowed = _listing(rule.allowed_jurisdictions)
        if not jurisdictions:
            if not strict:
                return None
            return (
                f'region "{region}" has no known jurisdiction, so {rule.source} cannot '
                f"allow it (allowed jurisdictions: {allowed}); declare spec.jurisdiction "
                "on the region's EdgeAgents"
            )
        outside = sorted(j for j in jurisdictions if j not in rule.allowed_jurisdictions)
        if outside:
            return (
                f'region "{region}" is in jurisdiction {_quoted(outside)}, which '
                f"{rule.source} does not allow (allowed jurisdictions: {allowed})"
            )
    return None


def check_regions(
    *,
    regions: Sequence[RegionRef],
    bindings: Sequence[Binding],
    jurisdictions: Mapping[str, Collection[str]],
) -> list[Violation]:
    """One violation per (named region, binding rule) pair the region does not pass.

    Regions of unknown jurisdiction pass jurisdiction rules here (see the module docstring).
    """
    violations = []
    for ref in regions:
        for binding in bindings:
            reason = refusal(
                binding.rule,
                region=ref.region,
                jurisdictions=jurisdictions.get(ref.region, ()),
                strict=False,
            )
            if reason is not None:
                violations.append(
                    Violation(
                        path=ref.path, message=reason, region=ref.region, policy=binding.policy
                    )
                )
    return violations


def unknown_jurisdictions(
    *,
    regions: Sequence[RegionRef],
    bindings: Sequence[Binding],
    jurisdictions: Mapping[str, Collection[str]],
) -> list[str]:
    """Warnings for named regions a jurisdiction rule binds but no EdgeAgent has placed yet."""
    constrained = [b.rule for b in bindings if b.rule.allowed_jurisdictions is not None]
    if not constrained:
        return []
    warnings = []
    for ref in regions:
        if jurisdictions.get(ref.region):
            continue
        sources = ", ".join(rule.source for rule in constrained)
        warnings.append(
            f'{ref.path}: region "{ref.region}" has no known jurisdiction yet (no EdgeAgent '
            f"there declares one); only agents there that declare a jurisdiction allowed by "
            f"{sources} will receive the model"
        )
    return warnings


def check_policy(
    name: str,
    rule: residency.ResidencyRule,
    *,
    jurisdictions: Mapping[str, Collection[str]],
) -> list[Violation]:
    """Every way a ResidencyPolicy contradicts itself, allows nothing, or states nothing."""
    if not rule.restricts:
        return [
            Violation(
                path="spec",
                message=(
                    "states no allowedRegions, allowedJurisdictions or deniedRegions, so it "
                    "would constrain nothing; state at least one"
                ),
                policy=name,
            )
        ]
    violations = []
    for field, values in (
        ("allowedRegions", rule.allowed_regions),
        ("allowedJurisdictions", rule.allowed_jurisdictions),
    ):
        if values is not None and not values:
            violations.append(
                Violation(
                    path=f"spec.{field}",
                    message=(
                        "is empty, so the policy allows nothing; list what it allows, "
                        "or leave the field out"
                    ),
                    policy=name,
                )
            )
    allowed_regions = sorted(rule.allowed_regions or ())
    for region in allowed_regions:
        if region in rule.denied_regions:
            violations.append(
                Violation(
                    path="spec.deniedRegions",
                    message=(
                        f'region "{region}" is both allowed (spec.allowedRegions) and denied; '
                        "remove it from one of the lists"
                    ),
                    region=region,
                    policy=name,
                )
            )
    if rule.allowed_jurisdictions:
        for region in allowed_regions:
            outside = sorted(
                j for j in jurisdictions.get(region, ()) if j not in rule.allowed_jurisdictions
            )
            if outside:
                violations.append(
                    Violation(
                        path="spec.allowedRegions",
                        message=(
                            f'region "{region}" is in jurisdiction {_quoted(outside)} '
                            "(as its EdgeAgents declare), outside spec.allowedJurisdictions "
                            f"({_listing(rule.allowed_jurisdictions)}), so it can never be "
                            "allowed; remove it or allow its jurisdiction"
                        ),
                        region=region,
                        policy=name,
                    )
                )
    return violations


def summary(violations: Sequence[Violation], *, lead: str) -> str:
    """One message for an admission response that names every field, region and policy."""
    details = "; ".join(str(v) for v in violations)
    return f"{lead}: {details}"


def _listing(values: Iterable[str]) -> str:
    return ", ".join(sorted(values)) or "none"


def _quoted(values: Iterable[str]) -> str:
    return ", ".join(f'"{v}"' for v in values)
