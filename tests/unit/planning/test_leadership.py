"""Who may take the leader Lease, with the clock passed in."""

from __future__ import annotations

import datetime

import pytest

from edgewave_operator.planning import leadership

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
S = datetime.timedelta(seconds=1)


@pytest.mark.parametrize(
    ("holder", "renewed", "now", "may"),
    [
        (None, None, T0, True),
        ("", T0, T0, True),  # released
        ("me", T0, T0, True),  # renewing
        ("other", T0, T0 + 14 * S, False),  # still valid
        ("other", T0, T0 + 15 * S, True),  # expired exactly at the duration
        ("other", None, T0, True),
    ],
)
def test_may_take(
    *, holder: str | None, renewed: datetime.datetime | None, now: datetime.datetime, may: bool
) -> None:
    assert (
        leadership.may_take(
            holder=holder, renewed_at=renewed, duration=15 * S, identity="me", now=now
        )
        is may
    )


def test_expiry() -> None:
    assert leadership.expires_at(renewed_at=T0, duration=15 * S, now=T0) == T0 + 15 * S
    assert leadership.expires_at(renewed_at=None, duration=15 * S, now=T0 + S) == T0 + S
