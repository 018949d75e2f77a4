"""Giving the memory a push used back to the system once it is over.

A push passes its chunks through memory that glibc's malloc takes from several arenas:
gRPC's transport threads assemble each message in theirs, the event loop copies it into
a bytes object in its own. glibc keeps what is freed in each arena for reuse, up to a
threshold that grows with the largest chunk seen, so an idle agent stayed tens of MiB
above where it started after a few pushes of 4 MiB chunks (measured: +86 MiB after four).
An edge node's memory belongs to the models it serves: after each push the agent asks
glibc to return every free page (`malloc_trim`), which costs milliseconds per push.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


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
