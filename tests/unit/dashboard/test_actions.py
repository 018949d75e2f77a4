"""The lifecycle actions table: a row per request, offered by the operator's own rule."""

from __future__ import annotations

from typing import Any

import pytest

from edgewave_api import controls
from edgewave_operator.lifecycle import actions
from edgewave_operator.planning import lifecycle, parsing
from tests.unit.dashboard import fixtures

A = actions.Action
RUNNING: dict[str, Any] = {**fixtures.STATUS, "currentVersion": "1.2.0"}
AWAITING: dict[str, Any] = {
    **RUNNING,
    "phase": "Paused",
    "control": {"awaitingApproval": "us-east"},
    "conditions": [
        {
            "type": "Paused",
            "status": "True",
            "reason": "AwaitingApproval",
            "message": "wave us-east awaits approval",
            "observedGeneration": 1,
            "lastTransitionTime": "2026-01-02T03:02:05Z",
        }
    ],
}
HELD: dict[str, Any] = {**RUNNING, "phase": "Paused", "control": {"paused": True}}
SUCCEEDED: dict[str, Any] = {**RUNNING, "phase": "Succeeded", "previousVersion": "1.1.0"}
FAILED: dict[str, Any] = {
    **RUNNING,
    "phase": "Failed",
    "conditions": [
        {
            "type": "Degraded",
            "status": "True",
            "reason": "LatencyTooHigh",
            "message": "wave eu-west p95 81ms > 50ms",
            "observedGeneration": 1,
            "lastTransitionTime": "2026-01-02T03:02:05Z",
        }
    ],
}


def test_every_request_has_a_row_and_a_button_label() -> None:
    assert set(actions.ACTIONS) == set(controls.Action)
    assert all(info.label for info in actions.ACTIONS.values())


@pytest.mark.parametrize(
    ("status", "paused", "offered"),
    [
        (None, False, []),
        (RUNNING, False, [A.PAUSE, A.ABORT, A.RESTART]),
        (HELD, False, [A.RESUME, A.ABORT, A.RESTART]),
        (AWAITING, False, [A.PAUSE, A.PROMOTE, A.ABORT, A.RESTART]),
        # Paused in the manifest: only the manifest lifts it, so Resume is not offered.
        ({**RUNNING, "phase": "Paused"}, True, [A.PAUSE, A.ABORT, A.RESTART]),
        (SUCCEEDED, False, [A.UNDO, A.RESTART]),
        (FAILED, False, [A.RETRY, A.RESTART]),
        ({**FAILED, "previousVersion": "1.1.0"}, False, [A.RETRY, A.UNDO, A.RESTART]),
    ],
)
def test_offered_is_what_the_operator_would_accept(
    status: dict[str, Any] | None, paused: bool, offered: list[actions.Action]
) -> None:
    rollout = fixtures.rollout(paused=paused, status=status)
    assert actions.offered(rollout, now=fixtures.T0) == offered
    # One rule: every row offered is exactly one `planning.lifecycle.refusal` accepts.
    current = parsing.progress_of(rollout.status, now=fixtures.T0)
    for action in actions.ACTIONS:
        request = controls.Request(action=action, nonce="n", generation=1)
        accepted = (
            lifecycle.refusal(request, current=current, generation=1, spec_paused=paused) is None
        )
        assert accepted == (action in offered), action


def test_a_refusal_is_the_operators_reason() -> None:
    rollout = fixtures.rollout(status=RUNNING)
    assert actions.refusal(A.RESUME, rollout, now=fixtures.T0) == "not paused by request"
    assert actions.refusal(A.PROMOTE, rollout, now=fixtures.T0) == (
        "no wave awaits approval (phase Progressing)"
    )
    assert actions.refusal(A.PAUSE, fixtures.rollout(), now=fixtures.T0) == (
        "the rollout has not started yet"
    )


def test_unknown_action_names_the_known_ones() -> None:
    assert actions.parse("pause") is A.PAUSE
    with pytest.raises(
        actions.NotApplicable,
        match=r"unknown action 'nuke' \(known: pause, resume, promote, abort, retry, undo, "
        r"restart\)",
    ):
        actions.parse("nuke")
    with pytest.raises(actions.NotApplicable) as raised:
        actions.parse("x" * 10_000)
    assert len(str(raised.value)) < 120
