"""Live objects (the API's pydantic models) put to the residency rules. Pure.

Which policies bind a rollout is decided by `planning.parsing.policy_applies` (label
selector, namespaces, `policyRef`), the same function planning uses, so admission and
planning never disagree about who is governed by what. This module only adds what
admission needs on top: the field paths of every region a rollout names, and the policy
each rule came from.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from edgewave_api import edgeagent, modelrollout, residencypolicy
from edgewave_operator.admission import rules
from edgewave_operator.planning import parsing, residency


def region_refs(spec: modelrollout.ModelRolloutSpec) -> list[rules.RegionRef]:
    """Every region the spec names as a target, with its field path."""
    refs = [
        rules.RegionRef(path=f"spec.targets.regions[{i}]", region=region)
        for i, region in enumerate(spec.targets.regions or ())
    ]
    for w, wave in enumerate(spec.strategy.waves):
        refs.extend(
            rules.RegionRef(path=f"spec.strategy.waves[{w}].regions[{i}]", region=region)
            for i, region in enumerate(wave.regions or ())
        )
    return refs


def policy_rule(policy: residencypolicy.ResidencyPolicy) -> residency.ResidencyRule:
    spec = policy.spec
    return residency.ResidencyRule(
        source=rules.policy_source(policy.metadata.name or ""),
        allowed_regions=_set(spec.allowed_regions),
        allowed_jurisdictions=_set(spec.allowed_jurisdictions),
        denied_regions=frozenset(spec.denied_regions or ()),
    )


def own_rule(rollout: modelrollout.ModelRollout) -> residency.ResidencyRule | None:
    own = rollout.spec.residency
    if own is None or (own.allowed_regions is None and own.allowed_jurisdictions is None):
        return None
    return residency.ResidencyRule(
        source=rules.OWN_SOURCE,
        allowed_regions=_set(own.allowed_regions),
        allowed_jurisdictions=_set(own.allowed_jurisdictions),
    )


def bindings(
    rollout: modelrollout.ModelRollout,
    policies: Iterable[residencypolicy.ResidencyPolicy],
) -> tuple[list[rules.Binding], list[rules.Violation]]:
    """The rules that bind `rollout`, and a violation if its policyRef names nothing."""
    policies = sorted(policies, key=lambda p: p.metadata.name or "")
    own = own_rule(rollout)
    bound = [rules.Binding(rule=own)] if own is not None else []
    bound.extend(
        rules.Binding(rule=policy_rule(policy), policy=policy.metadata.name)
        for policy in policies
        if parsing.policy_applies(policy, rollout)
    )
    missing = parsing.missing_policy(rollout, policies)
    violations = []
    if missing is not None:
        violations.append(
            rules.Violation(
                path="spec.residency.policyRef.name",
                message=(
                    f"{rules.policy_source(missing)} does not exist; create it first, "
                    "or remove the reference"
                ),
                policy=missing,
            )
        )
    return bound, violations


def needs_jurisdictions(bound: Iterable[rules.Binding | residency.ResidencyRule]) -> bool:
    """Whether deciding needs the fleet's region -> jurisdiction map (a cost: a list call)."""
    for item in bound:
        rule = item.rule if isinstance(item, rules.Binding) else item
        if rule.allowed_jurisdictions is not None:
            return True
    return False


def jurisdictions(agents: Iterable[edgeagent.EdgeAgent]) -> dict[str, frozenset[str]]:
    """Region -> the jurisdictions EdgeAgents there declare."""
    return rules.jurisdictions_by_region(
        (agent.spec.region, agent.spec.jurisdiction) for agent in agents
    )


def check_rollout(
    rollout: modelrollout.ModelRollout,
    *,
    policies: Iterable[residencypolicy.ResidencyPolicy],
    jurisdictions: Mapping[str, Collection[str]],
) -> list[rules.Violation]:
    """Every residency violation of the regions `rollout` names explicitly."""
    bound, violations = bindings(rollout, policies)
    violations.extend(
        rules.check_regions(
            regions=region_refs(rollout.spec), bindings=bound, jurisdictions=jurisdictions
        )
    )
    return violations


def warnings(
    rollout: modelrollout.ModelRollout,
    *,
    policies: Iterable[residencypolicy.ResidencyPolicy],
    jurisdictions: Mapping[str, Collection[str]],
) -> list[str]:
    """What admission lets through but the author should hear about.

    Named regions of unknown jurisdiction under a jurisdiction rule (see `rules`), and
    regions `spec.residency.allowedRegions` allows but a binding policy forbids: not an
    error (the rules combine as an intersection, so such a region is never reached), but
    almost always a mistake.
    """
    bound, _ = bindings(rollout, policies)
    found = rules.unknown_jurisdictions(
        regions=region_refs(rollout.spec), bindings=bound, jurisdictions=jurisdictions
    )
    own = rollout.spec.residency
    if own is None or not own.allowed_regions:
        return found
    refs = [
        rules.RegionRef(path=f"spec.residency.allowedRegions[{i}]", region=region)
        for i, region in enumerate(own.allowed_regions)
    ]
    policy_bound = [b for b in bound if b.policy is not None]
    return found + [
        f"{violation}; agents there will be excluded"
        for violation in rules.check_regions(
            regions=refs, bindings=policy_bound, jurisdictions=jurisdictions
        )
    ]


def check_policy(
    policy: residencypolicy.ResidencyPolicy,
    *,
    jurisdictions: Mapping[str, Collection[str]],
) -> list[rules.Violation]:
    """Every way `policy` contradicts itself (given the fleet's jurisdictions)."""
    return rules.check_policy(
        policy.metadata.name or "", policy_rule(policy), jurisdictions=jurisdictions
    )


def _set(values: Iterable[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)
