"""Activation windows: whether an agent's region may activate now, and when it next may. Pure.

A window is a cron schedule of start times in a time zone and a duration; it is open at
`now` when the latest start at or before `now` is less than `duration` ago. Regions may
have their own window (`spec.strategy.activationWindow.regions`); the others use the
rollout's. No window at all means always open. The clock is passed in, so the tables in
`tests/unit/planning/test_windows.py` move time instead of sleeping.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import croniter

from edgewave_api import modelrollout

_SECOND = datetime.timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Window:
    schedule: str
    duration: datetime.timedelta
    time_zone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Opening:
    """A window at one moment: open (until `closes_at`) or closed (until `opens_at`)."""

    open: bool
    opens_at: datetime.datetime | None = None
    """The next start while closed."""
    closes_at: datetime.datetime | None = None
    """The end of the current window while open."""


ALWAYS = Opening(open=True)


def opening(window: Window, *, now: datetime.datetime) -> Opening:
    """`window` at `now` (an aware time)."""
    zone = zoneinfo.ZoneInfo(window.time_zone)
    local = now.astimezone(zone)
    # The latest start at or before `now`: croniter's previous start strictly before now+1s.
    last = croniter.croniter(window.schedule, local + _SECOND).get_prev(datetime.datetime)
    closes = last + window.duration
    if last <= local < closes:
        return Opening(open=True, closes_at=closes.astimezone(datetime.UTC))
    upcoming = croniter.croniter(window.schedule, local).get_next(datetime.datetime)
    return Opening(open=False, opens_at=upcoming.astimezone(datetime.UTC))


def windows_of(
    spec: modelrollout.ActivationWindow | None,
) -> tuple[Window | None, Mapping[str, Window]]:
    """The rollout's window and each overridden region's."""
    if spec is None:
        return None, {}

    def of(item: modelrollout.ActivationWindow | modelrollout.RegionalWindow) -> Window:
        return Window(
            schedule=item.schedule,
            duration=datetime.timedelta(seconds=item.duration_seconds),
            time_zone=item.time_zone,
        )

    regional = {region: of(item) for item in spec.regions or [] for region in item.regions}
    return of(spec), regional


def openings(
    spec: modelrollout.ActivationWindow | None,
    *,
    regions: Iterable[str],
    now: datetime.datetime,
) -> dict[str, Opening]:
    """Region -> its window at `now` (every region open when there is no window)."""
    default, regional = windows_of(spec)
    found: dict[str, Opening] = {}
    for region in sorted(set(regions)):
        window = regional.get(region, default)
        found[region] = ALWAYS if window is None else opening(window, now=now)
    return found
