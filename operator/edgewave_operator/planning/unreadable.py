"""ResidencyPolicies the operator cannot parse, and how planning fails closed on them. Pure.

Admission refuses every rollout while any ResidencyPolicy is unreadable (it cannot know
which rollouts the policy would bind). Planning must not be weaker: a policy that does not
parse (written past the webhook, or by a CRD of another version) might govern any rollout,
so it binds every rollout as a rule that allows no region. Each rollout's agents are then
excluded with that rule as the source, and its `ResidencyCompliant` condition names the
policy and the parse error, until the policy is fixed or deleted. Nothing is evicted on
its account: an unreadable policy says nothing about where models may not be, and removing
a fleet's models because of a typo would turn a mistake into an outage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from edgewave_api import residencypolicy
from edgewave_operator.planning import residency

REASON = "PolicyUnreadable"
"""The `ResidencyCompliant` condition's reason while an unreadable policy binds a rollout."""


@dataclass(frozen=True, slots=True)
class UnreadablePolicy:
    """A ResidencyPolicy that exists but does not parse: its name and the first error."""

    name: str
    error: str

    @property
    def source(self) -> str:
        return f"{residency.policy_source(self.name)} (unreadable: {self.error})"


def read(name: str, body: Mapping[str, Any]) -> residencypolicy.ResidencyPolicy | UnreadablePolicy:
    """The policy parsed, or what is known about it when it does not parse."""
    try:
        return residencypolicy.ResidencyPolicy.model_validate(dict(body))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "object"
        return UnreadablePolicy(name=name, error=f"{where}: {first['msg']}"[:512])


def closed_rules(unreadable: Iterable[UnreadablePolicy]) -> tuple[residency.ResidencyRule, ...]:
    """One rule per unreadable policy, allowing no region, named by the policy and error."""
    return tuple(
        residency.ResidencyRule(source=policy.source, allowed_regions=frozenset())
        for policy in sorted(unreadable, key=lambda p: p.name)
    )


def message(unreadable: Iterable[UnreadablePolicy]) -> str | None:
    """The condition message while `unreadable` bind the rollout (None: none do)."""
    listed = sorted(unreadable, key=lambda p: p.name)
    if not listed:
        return None
    named = "; ".join(
        f"{residency.policy_source(p.name)} cannot be parsed ({p.error})" for p in listed
    )
    return (
        f"{named}; every agent is excluded until the policy is fixed or deleted "
        "(admission refuses rollouts meanwhile)"
    )


def split(
    items: Iterable[residencypolicy.ResidencyPolicy | UnreadablePolicy],
) -> tuple[tuple[residencypolicy.ResidencyPolicy, ...], tuple[UnreadablePolicy, ...]]:
    """Parsed policies and unreadable ones, apart."""
    parsed: list[residencypolicy.ResidencyPolicy] = []
    unreadable: list[UnreadablePolicy] = []
    for item in items:
        if isinstance(item, UnreadablePolicy):
            unreadable.append(item)
        else:
            parsed.append(item)
    return tuple(parsed), tuple(unreadable)
