"""Rollback decisions: which agents this rollout updated and what they go back to. Pure.

After a failed gate every agent of every started wave that serves the rollout's version
goes back: to the rollout's previous version when the agent still holds it, else to the
other version it holds (its standby slot), else the new version is removed so the agent
is where it was before the rollout (serving nothing of this model).

This is the one revert rule: each `Revert` is fully resolved (version, digest, backend and
how to get there), so the executor carries it out without deciding again from what it
happens to know live (after an operator restart it knows nothing live, and guessing there
once stripped every version of the model from the agent).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from edgewave_operator.planning import views


class Method(StrEnum):
    """How an agent goes back."""

    RESTORE = "Restore"
    """The version to go back to is loaded on standby: the agent's `Rollback` swaps it in."""
    ACTIVATE = "Activate"
    """It is stored but not loaded: activate it (by digest and backend)."""
    REMOVE = "Remove"
    """Nothing ran before this rollout: take the model off the agent again."""


@dataclass(frozen=True, slots=True)
class Revert:
    """Make `to_version` active again on `agent` (None: remove `from_version`)."""

    agent: str
    model: str
    from_version: str
    to_version: str | None
    digest: str = ""
    backend: str = ""
    method: Method = Method.REMOVE


def method_for(held: views.HeldModel | None) -> Method:
    """How to make `held` (the version to go back to) active again."""
    if held is None:
        return Method.REMOVE
    if held.state is views.ModelState.STANDBY:
        return Method.RESTORE
    return Method.ACTIVATE


def previous_on(
    agent: views.AgentView, *, model: str, version: str, previous_version: str | None
) -> views.HeldModel | None:
    """The version of `model` that `agent` should serve again instead of `version`."""
    others = [
        held
        for held in agent.versions_of(model)
        if held.version != version and held.state is not views.ModelState.FAILED
    ]
    preferred = [held for held in others if held.version == previous_version]
    if preferred:
        return preferred[0]
    return max(others, key=lambda held: held.version, default=None)


def plan_reverts(
    *,
    model: str,
    version: str,
    previous_version: str | None,
    agents: Iterable[views.AgentView],
) -> tuple[Revert, ...]:
    """One revert per agent (by name) whose active version of `model` is `version`."""
    reverts: list[Revert] = []
    for agent in sorted(agents, key=lambda a: a.name):
        if agent.active_version(model) != version:
            continue
        back = previous_on(agent, model=model, version=version, previous_version=previous_version)
        reverts.append(
            Revert(
                agent=agent.name,
                model=model,
                from_version=version,
                to_version=back.version if back else None,
                digest=back.digest if back else "",
                backend=back.backend if back else "",
                method=method_for(back),
            )
        )
    return tuple(reverts)
