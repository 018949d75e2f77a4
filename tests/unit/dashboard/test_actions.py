"""The lifecycle actions table: what each decides for a rollout, and its one-line refusals."""

from __future__ import annotations

import pytest

from edgewave_operator.lifecycle import actions
from tests.unit.dashboard import fixtures


def test_pause_sets_spec_strategy_paused() -> None:
    change = actions.decide(actions.Action.PAUSE, fixtures.rollout(status=fixtures.STATUS))
    assert change.patch == {"spec": {"strategy": {"paused": True}}}
    assert change.summary == ("paused shop/classifier-global (spec.strategy.paused: false -> true)")
    assert change.changes_spec


def test_resume_clears_it() -> None:
    change = actions.decide(actions.Action.RESUME, fixtures.rollout(paused=True))
    assert change.patch == {"spec": {"strategy": {"paused": False}}}
    assert change.summary.startswith("resumed shop/classifier-global")


@pytest.mark.parametrize(
    ("action", "rollout", "reason"),
    [
        (actions.Action.PAUSE, fixtures.rollout(paused=True), "is already paused"),
        (
            actions.Action.PAUSE,
            fixtures.rollout(status={**fixtures.STATUS, "phase": "Succeeded"}),
            "is Succeeded; nothing to pause until its spec changes",
        ),
        (actions.Action.RESUME, fixtures.rollout(), "is not paused"),
    ],
)
def test_refusals_name_the_rollout_and_why(
    action: actions.Action, rollout: object, reason: str
) -> None:
    with pytest.raises(actions.NotApplicable) as raised:
        actions.decide(action, rollout)  # type: ignore[arg-type]
    assert str(raised.value) == f"rollout shop/classifier-global {reason}"


def test_every_action_has_a_row_and_a_button_label() -> None:
    assert set(actions.ACTIONS) == set(actions.Action)
    assert all(info.label for info in actions.ACTIONS.values())


def test_unknown_action_names_the_known_ones() -> None:
    assert actions.parse("pause") is actions.Action.PAUSE
    with pytest.raises(
        actions.NotApplicable, match=r"unknown action 'nuke' \(known: pause, resume\)"
    ):
        actions.parse("nuke")
    with pytest.raises(actions.NotApplicable) as raised:
        actions.parse("x" * 10_000)
    assert len(str(raised.value)) < 100
