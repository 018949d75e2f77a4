"""The lifecycle actions as a table: each decides the change to one rollout, or refuses. Pure.

An action returns a `Change`: a JSON merge patch of the rollout (today only `spec`, which
GitOps tools see as drift) and a one-line summary of what changed. A request that cannot
apply raises `NotApplicable` with a one-line reason (`resume` of a rollout that is not
paused). Adding an action is adding one function and one row to `ACTIONS`; the dashboard
offers a button per row and the CLI a sub-command per row.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edgewave_api import modelrollout
from edgewave_api.errors import PermanentError


class Action(enum.StrEnum):
    PAUSE = "pause"
    RESUME = "resume"


class NotApplicable(PermanentError):
    """The action cannot apply to the rollout as it is now; the message says why."""


@dataclass(frozen=True, slots=True)
class Change:
    patch: dict[str, Any]
    """A JSON merge patch of the ModelRollout."""
    summary: str
    """What changed, in one line (`spec.strategy.paused: false -> true`)."""
    changes_spec: bool
    """Whether the patch writes `spec` (GitOps tools then show drift)."""


def _name(rollout: modelrollout.ModelRollout) -> str:
    meta = rollout.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name or ""


def _paused(value: bool) -> dict[str, Any]:
    return {"spec": {"strategy": {"paused": value}}}


def pause(rollout: modelrollout.ModelRollout) -> Change:
    """Stop before the next batch: `spec.strategy.paused` to true."""
    if rollout.spec.strategy.paused:
        raise NotApplicable(f"rollout {_name(rollout)} is already paused")
    phase = rollout.status.phase if rollout.status else None
    if phase in modelrollout.TERMINAL_PHASES:
        raise NotApplicable(
            f"rollout {_name(rollout)} is {phase}; nothing to pause until its spec changes"
        )
    return Change(
        patch=_paused(True),
        summary=f"paused {_name(rollout)} (spec.strategy.paused: false -> true)",
        changes_spec=True,
    )


def resume(rollout: modelrollout.ModelRollout) -> Change:
    """Continue from the same wave: `spec.strategy.paused` back to false."""
    if not rollout.spec.strategy.paused:
        raise NotApplicable(f"rollout {_name(rollout)} is not paused")
    return Change(
        patch=_paused(False),
        summary=f"resumed {_name(rollout)} (spec.strategy.paused: true -> false)",
        changes_spec=True,
    )


@dataclass(frozen=True, slots=True)
class ActionInfo:
    decide: Callable[[modelrollout.ModelRollout], Change]
    label: str
    """The button's text."""
    offered: Callable[[modelrollout.ModelRollout], bool]
    """Whether a person would be offered it now (the dashboard hides the others)."""


def _running(rollout: modelrollout.ModelRollout) -> bool:
    phase = rollout.status.phase if rollout.status else None
    return not rollout.spec.strategy.paused and phase not in modelrollout.TERMINAL_PHASES


ACTIONS: Mapping[Action, ActionInfo] = {
    Action.PAUSE: ActionInfo(decide=pause, label="Pause", offered=_running),
    Action.RESUME: ActionInfo(
        decide=resume, label="Resume", offered=lambda r: r.spec.strategy.paused
    ),
}


def parse(name: str) -> Action:
    """The action called `name`; `NotApplicable` naming the known ones otherwise."""
    try:
        return Action(name)
    except ValueError:
        known = ", ".join(a.value for a in Action)
        raise NotApplicable(f"unknown action {name[:40]!r} (known: {known})") from None


def decide(action: Action, rollout: modelrollout.ModelRollout) -> Change:
    return ACTIONS[action].decide(rollout)


def offered(rollout: modelrollout.ModelRollout) -> list[Action]:
    """The actions that apply to `rollout` now, in table order."""
    return [action for action, info in ACTIONS.items() if info.offered(rollout)]
