"""Which served models a rollout owns on each agent, and so may replace, evict or remove. Pure.

Agents record the owner of every served model (the ModelRollout an activation named,
`namespace/name`), and report it. A rollout acts only on versions it owns, or that no
owner was recorded for (placed before owners existed): evictions and the removal on
deletion consider only those, and an agent holding the model for another rollout is
excluded (`OwnedByAnotherRollout`) instead of being sent activations it would refuse.
Admission keeps a model name to one owner; this is the backstop for what admission
cannot see (two creates racing, namespaces its webhook does not cover).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from edgewave_operator.planning import targeting, views

OWNED_ELSEWHERE = "OwnedByAnotherRollout"
"""Exclusion reason for an agent that serves the model for another rollout."""


@dataclass(frozen=True, slots=True)
class Owner:
    """A ModelRollout, as the owner of what it serves."""

    namespace: str
    name: str
    uid: str = ""

    @property
    def key(self) -> str:
        """`namespace/name`: how agents and the EdgeAgent status name the owner."""
        return f"{self.namespace}/{self.name}"


def owns(held: views.HeldModel, owner: Owner) -> bool:
    """Whether `owner` may act on `held` (it owns it, or nobody is recorded)."""
    return held.owner is None or held.owner == owner.key


def others(agent: views.AgentView, *, model: str, owner: Owner) -> str | None:
    """The other rollout that holds `model` on `agent` (None: none does)."""
    return next((h.owner for h in agent.versions_of(model) if not owns(h, owner) and h.owner), None)


def own_view(agent: views.AgentView, *, model: str, owner: Owner) -> views.AgentView:
    """`agent` as `owner` may act on it: versions of `model` others own left out."""
    kept = tuple(h for h in agent.models if h.name != model or owns(h, owner))
    return agent if len(kept) == len(agent.models) else replace(agent, models=kept)


def own_fleet(
    fleet: Iterable[views.AgentView], *, model: str, owner: Owner
) -> tuple[views.AgentView, ...]:
    """Every agent as `owner` may act on it (see `own_view`)."""
    return tuple(own_view(agent, model=model, owner=owner) for agent in fleet)


def exclude_owned_elsewhere(
    found: targeting.Targeting, *, fleet: Iterable[views.AgentView], model: str, owner: Owner
) -> targeting.Targeting:
    """Targets without agents that serve `model` for another rollout."""
    refused = {}
    for agent in fleet:
        holder = others(agent, model=model, owner=owner)
        if holder is not None:
            refused[agent.name] = (
                f"agent {agent.name} serves model {model} for ModelRollout {holder}; "
                f"{owner.key} does not replace it"
            )
    return targeting.exclude(found, refused=refused, reason=OWNED_ELSEWHERE)
