"""Giving the memory a push used back to the system once it is over.

A push passes its chunks through memory that glibc's malloc takes from several arenas:
gRPC's transport threads assemble each message in theirs, the event loop copies it into
a bytes object in its own. glibc keeps what is freed in each arena for reuse, up to a
threshold that grows with the largest chunk seen, so an idle agent stayed tens of MiB
above where it started after a few pushes of 4 MiB chunks (measured: +86 MiB after four).
An edge node's memory belongs to the models it serves: after each push the agent asks
glibc to return every free page (`malloc_trim`), which costs milliseconds per push.

During a push, though, freed chunks should stay with malloc for the next ones: glibc's
default gives the top of a heap back as soon as more than twice the largest freed chunk is
free there, so with a few chunks written behind the network a third of every push was
faulted in afresh (23,000 page faults per 256 MiB). The agent fixes the thresholds
(`reuse_freed_memory`): messages up to its largest are taken from the heap, and up to
`KEEP_FREE_BYTES` free at a heap's top stay there for the next chunks. malloc_trim gives
back the main heap's top and the free pages inside every heap, but not the top of the
other arenas' heaps (gRPC's threads): after a push the agent keeps up to that much more
(measured 8-11 MiB after four pushes of 4 MiB chunks, against -6 to +5 before).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


# Free bytes a heap keeps at its top for the next chunks (per malloc arena). 16 MiB cut
# page faults by 69% but kept 31-49 MiB after four pushes of 4 MiB chunks; 8 MiB, 43%.
KEEP_FREE_BYTES = 8 << 20
# glibc's ceiling for M_MMAP_THRESHOLD on 64-bit systems.
_MMAP_THRESHOLD_MAX = 32 << 20
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def reuse_freed_memory(*, largest_message: int) -> bool:
    """Keep freed chunks for reuse instead of faulting fresh pages; False if not glibc.

    For the agent's process (its `serve` command): allocations up to `largest_message`
    (capped at glibc's 32 MiB) come from the heap, and a heap's top is given back only
    beyond `KEEP_FREE_BYTES`; `release_free_memory` after each push still gives back all.
    """
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)  # glibc only (not musl)
    if mallopt is None:
        return False
    mmap_threshold = min(_MMAP_THRESHOLD_MAX, largest_message + (64 << 10))
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, KEEP_FREE_BYTES)
    )


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim  # glibc only (not musl)
    except (OSError, AttributeError):
        log.debug("no malloc_trim here (not glibc): freed memory stays with malloc")
        return None
    return trim


def release_free_memory() -> bool:
    """Return malloc's free pages to the system; False where that is not possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
