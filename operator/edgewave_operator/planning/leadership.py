"""Who may hold the leader Lease at a given time. Pure.

A replica may take the Lease when nobody holds it, when it already holds it, or when the
holder has not renewed within the Lease's duration. The clock is passed in.
"""

from __future__ import annotations

import datetime


def may_take(
    *,
    holder: str | None,
    renewed_at: datetime.datetime | None,
    duration: datetime.timedelta,
    identity: str,
    now: datetime.datetime,
) -> bool:
    if not holder or holder == identity:
        return True
    if renewed_at is None:
        return True
    return now >= renewed_at + duration


def expires_at(
    *, renewed_at: datetime.datetime | None, duration: datetime.timedelta, now: datetime.datetime
) -> datetime.datetime:
    """When a Lease renewed at `renewed_at` may be taken over (now, if never renewed)."""
    return now if renewed_at is None else renewed_at + duration
