"""Which cached engines to evict to make room: least recently used first, never a protected one.

Pure: sizes, last-use times and the protected set (pinned by the operator, being delivered,
being uploaded) in; the digests to delete out, or None when even evicting everything
evictable cannot make room, so the caller refuses the upload instead of evicting for nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    size: int
    last_used: float


def evictions(
    entries: Mapping[str, Entry],
    *,
    needed: int,
    used: int,
    capacity: int,
    protected: Set[str],
) -> list[str] | None:
    """The fewest least-recently-used unprotected entries whose removal fits `needed` bytes."""
    if used + needed <= capacity:
        return []
    candidates = sorted(
        (digest for digest in entries if digest not in protected),
        key=lambda digest: (entries[digest].last_used, digest),
    )
    chosen: list[str] = []
    for digest in candidates:
        chosen.append(digest)
        used -= entries[digest].size
        if used + needed <= capacity:
            return chosen
    return None
