"""set_condition: lastTransitionTime moves only when the status flips; the rest always updates."""

from __future__ import annotations

import datetime

import pytest

from edgewave_api import conditions
from edgewave_api.conditions import ConditionStatus

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)


def _set(
    existing: list[conditions.Condition],
    status: ConditionStatus | bool,
    *,
    type: str = "Ready",
    now: datetime.datetime = T1,
) -> list[conditions.Condition]:
    return conditions.set_condition(
        existing,
        type=type,
        status=status,
        reason="WaveHealthGatePassed",
        message="p95 12.0 ms <= 50 ms",
        observed_generation=3,
        now=now,
    )


def _ready(status: ConditionStatus) -> conditions.Condition:
    return conditions.Condition(
        type="Ready",
        status=status,
        reason="Before",
        message="before",
        observed_generation=2,
        last_transition_time=T0,
    )


@pytest.mark.parametrize(
    ("before", "after", "moves"),
    [
        (ConditionStatus.FALSE, ConditionStatus.TRUE, True),
        (ConditionStatus.TRUE, ConditionStatus.FALSE, True),
        (ConditionStatus.UNKNOWN, ConditionStatus.TRUE, True),
        (ConditionStatus.TRUE, ConditionStatus.TRUE, False),
        (ConditionStatus.FALSE, ConditionStatus.FALSE, False),
        (ConditionStatus.TRUE, True, False),
        (ConditionStatus.TRUE, False, True),
    ],
)
def test_transition_time_moves_only_on_a_flip(
    before: ConditionStatus, after: ConditionStatus | bool, moves: bool
) -> None:
    (updated,) = _set([_ready(before)], after)
    assert updated.last_transition_time == (T1 if moves else T0)
    # Reason, message and generation always follow the latest call.
    assert (updated.reason, updated.message, updated.observed_generation) == (
        "WaveHealthGatePassed",
        "p95 12.0 ms <= 50 ms",
        3,
    )


def test_a_new_type_is_appended_with_now_and_order_is_kept() -> None:
    existing = [_ready(ConditionStatus.TRUE)]
    updated = _set(existing, False, type="Degraded")
    assert [c.type for c in updated] == ["Ready", "Degraded"]
    assert updated[1].last_transition_time == T1
    assert updated[1].status is ConditionStatus.FALSE
    again = _set(updated, True, type="Ready")
    assert [c.type for c in again] == ["Ready", "Degraded"]


def test_the_input_list_is_not_modified() -> None:
    existing = [_ready(ConditionStatus.FALSE)]
    _set(existing, True)
    assert existing == [_ready(ConditionStatus.FALSE)]


def test_find_and_is_true() -> None:
    marks = _set(_set([], True), False, type="Degraded")
    assert conditions.is_true(marks, "Ready")
    assert not conditions.is_true(marks, "Degraded")
    assert not conditions.is_true(marks, "Compiled")
    assert conditions.find_condition(marks, "Compiled") is None
    found = conditions.find_condition(marks, "Degraded")
    assert found is not None and found.status is ConditionStatus.FALSE


def test_wire_form_is_metav1_condition() -> None:
    (condition,) = _set([], True, now=T1.replace(microsecond=123456))
    assert condition.model_dump(by_alias=True, exclude_none=True, mode="json") == {
        "type": "Ready",
        "status": "True",
        "observedGeneration": 3,
        "lastTransitionTime": "2026-01-01T12:05:00Z",
        "reason": "WaveHealthGatePassed",
        "message": "p95 12.0 ms <= 50 ms",
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"reason": "has space"},
        {"reason": ""},
        {"status": "Yes"},
        {"type": "not a type"},
        {"lastTransitionTime": "2026-01-01T12:00:00"},  # no zone: times must be aware
    ],
)
def test_invalid_conditions_are_refused(bad: dict[str, str]) -> None:
    good = {
        "type": "Ready",
        "status": "True",
        "lastTransitionTime": "2026-01-01T12:00:00Z",
        "reason": "Fine",
        "message": "",
    }
    with pytest.raises(ValueError, match=next(iter(bad))):
        conditions.Condition.model_validate({**good, **bad})
