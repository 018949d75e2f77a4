"""Times as people read them in a table: `45s`, `12m`, `5h`, `3d` ago, like kubectl. Pure."""

from __future__ import annotations

import datetime

# (below this many seconds, show in this unit of this many seconds)
_STEPS = ((120, "s", 1), (2 * 3600, "m", 60), (48 * 3600, "h", 3600))


def age(then: datetime.datetime | None, *, now: datetime.datetime) -> str:
    """How long before `now` `then` was, in one unit; `-` when unknown."""
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    for limit, suffix, size in _STEPS:
        if seconds < limit:
            return f"{seconds // size}{suffix}"
    return f"{seconds // 86400}d"
