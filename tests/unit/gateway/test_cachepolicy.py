"""Which engines the cache evicts: least recently used first, never a protected one."""

from __future__ import annotations

import pytest

from edgewave_gateway.cachepolicy import Entry, evictions

ENTRIES = {"a": Entry(40, 1.0), "b": Entry(40, 3.0), "c": Entry(20, 2.0)}


@pytest.mark.parametrize(
    ("needed", "protected", "expected"),
    [
        (0, set(), []),  # fits already (100 of 100)
        (10, set(), ["a"]),  # oldest first
        (50, set(), ["a", "c"]),
        (50, {"a"}, ["c", "b"]),  # a pinned: the next oldest go
        (70, {"b"}, None),  # only a and c are evictable: 60 bytes, not enough
        (100, set(), ["a", "c", "b"]),
        (101, set(), None),
    ],
)
def test_evictions(needed: int, protected: set[str], expected: list[str] | None) -> None:
    assert (
        evictions(ENTRIES, needed=needed, used=100, capacity=100, protected=protected) == expected
    )
