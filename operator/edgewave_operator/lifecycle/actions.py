"""The lifecycle actions as a table: a row per request a person can make. Pure.

Every action is a request (`edgewave_api.controls`) the operator answers in
`status.control`; none changes `spec`, so GitOps tools see no drift. Whether one applies
now is the operator's own rule, `planning.lifecycle.refusal`, asked here with the
rollout's recorded progress: the dashboard offers a button per row that the rule allows,
and a refused request is a `NotApplicable` with the rule's one-line reason. Adding an
action is adding a `controls.Action` member, its rule in `planning.lifecycle`, and a row.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

from edgewave_api import controls, modelrollout
from edgewave_api.errors import PermanentError
from edgewave_operator.planning import lifecycle, parsing

Action = controls.Action


class NotApplicable(PermanentError):
    """The action cannot apply to the rollout as it is now; the message says why."""


@dataclass(frozen=True, slots=True)
class ActionInfo:
    label: str
    """The button's text."""


ACTIONS: Mapping[Action, ActionInfo] = {
    Action.PAUSE: ActionInfo(label="Pause"),
    Action.RESUME: ActionInfo(label="Resume"),
    Action.PROMOTE: ActionInfo(label="Promote"),
    Action.ABORT: ActionInfo(label="Abort"),
    Action.RETRY: ActionInfo(label="Retry"),
    Action.UNDO: ActionInfo(label="Undo"),
    Action.RESTART: ActionInfo(label="Restart"),
}


def parse(name: str) -> Action:
    """The action called `name`; `NotApplicable` naming the known ones otherwise."""
    try:
        return Action(name)
    except ValueError:
        known = ", ".join(a.value for a in Action)
        raise NotApplicable(f"unknown action {name[:40]!r} (known: {known})") from None


def refusal(
    action: Action, rollout: modelrollout.ModelRollout, *, now: datetime.datetime
) -> str | None:
    """Why `action` (with no options) cannot apply to `rollout` now; None when it can."""
    generation = rollout.metadata.generation or 0
    request = controls.Request(action=action, nonce="-", generation=generation)
    return lifecycle.refusal(
        request,
        current=parsing.progress_of(rollout.status, now=now),
        generation=generation,
        spec_paused=rollout.spec.strategy.paused,
    )


def offered(rollout: modelrollout.ModelRollout, *, now: datetime.datetime) -> list[Action]:
    """The actions that apply to `rollout` now, in table order."""
    return [action for action in ACTIONS if refusal(action, rollout, now=now) is None]
