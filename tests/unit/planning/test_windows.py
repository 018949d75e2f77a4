"""Activation windows at chosen moments (the clock passed in), and their validation."""

from __future__ import annotations

import datetime
from typing import Any

import pydantic
import pytest

from edgewave_api import modelrollout
from edgewave_operator.planning import windows

UTC = datetime.UTC
NIGHTLY = windows.Window(
    schedule="0 2 * * *", duration=datetime.timedelta(hours=1), time_zone="Europe/Berlin"
)


def at(day: int, month: int = 3, hour: int = 0, minute: int = 0) -> datetime.datetime:
    """A UTC moment in 2026."""
    return datetime.datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # 00:59:59 UTC is 01:59:59 in Berlin (CET): closed, opens at 01:00 UTC.
        (
            at(1, minute=59) + datetime.timedelta(seconds=59),
            windows.Opening(open=False, opens_at=at(1, hour=1)),
        ),
        # the start itself is inside; it closes an hour later
        (at(1, hour=1), windows.Opening(open=True, closes_at=at(1, hour=2))),
        (
            at(1, hour=1, minute=59) + datetime.timedelta(seconds=59),
            windows.Opening(open=True, closes_at=at(1, hour=2)),
        ),
        # the end is outside; the next start is tomorrow
        (at(1, hour=2), windows.Opening(open=False, opens_at=at(2, hour=1))),
        # summer time (CEST): 02:00 in Berlin is 00:00 UTC
        (at(1, month=7, minute=30), windows.Opening(open=True, closes_at=at(1, month=7, hour=1))),
    ],
)
def test_a_window_is_open_from_each_start_for_its_duration(
    now: datetime.datetime, expected: windows.Opening
) -> None:
    assert windows.opening(NIGHTLY, now=now) == expected


def test_regions_use_their_own_window_or_the_rollouts() -> None:
    spec = modelrollout.ActivationWindow.model_validate(
        {
            "schedule": "0 2 * * *",
            "durationSeconds": 3600,
            "timeZone": "Europe/Berlin",
            "regions": [{"regions": ["us-east"], "schedule": "0 * * * *", "durationSeconds": 60}],
        }
    )
    found = windows.openings(spec, regions=["eu-west", "us-east"], now=at(1, hour=1, minute=30))
    assert found["eu-west"].open
    assert not found["us-east"].open and found["us-east"].opens_at == at(1, hour=2)
    assert windows.openings(None, regions=["eu-west"], now=at(1)) == {"eu-west": windows.ALWAYS}


@pytest.mark.parametrize(
    ("window", "error"),
    [
        ({"schedule": "61 2 * * *", "durationSeconds": 60}, "schedule"),
        ({"schedule": "0 2 * * * *", "durationSeconds": 60}, "five-field cron"),
        ({"schedule": "0 2 * * *", "durationSeconds": 60, "timeZone": "Mars/Base"}, "timeZone"),
        ({"schedule": "0 2 * * *", "durationSeconds": 59}, "durationSeconds"),
        (
            {
                "schedule": "0 2 * * *",
                "durationSeconds": 60,
                "regions": [
                    {"regions": ["a"], "schedule": "0 * * * *", "durationSeconds": 60},
                    {"regions": ["a"], "schedule": "0 * * * *", "durationSeconds": 60},
                ],
            },
            "names region a twice",
        ),
    ],
)
def test_a_bad_window_is_refused_naming_the_field(window: dict[str, Any], error: str) -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        modelrollout.ActivationWindow.model_validate(window)
    assert error in str(raised.value)
