"""Which models are being changed, and which artifacts are being loaded, right now.

Exists so one activation, rollback or removal runs per model at a time (a second one is
refused with a retry hint), and so garbage collection, which reads `busy` and `pinned`
under the same serving lock, neither forgets versions of a model being changed nor
deletes an artifact from under a load.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Iterator

from edgewave_agent import errors


class Claims:
    def __init__(self, *, lock: threading.RLock) -> None:
        self._lock = lock
        self._busy: set[str] = set()
        # Digests an activation is loading right now: garbage collection leaves them alone.
        self._in_use: collections.Counter[str] = collections.Counter()

    def claim(self, model: str) -> None:
        with self._lock:
            if model in self._busy:
                raise errors.ActivationBusy(
                    f"another activation, rollback or removal of {model} is running; retry",
                    retry_after=2.0,
                )
            self._busy.add(model)

    def release(self, model: str) -> None:
        with self._lock:
            self._busy.discard(model)

    @contextlib.contextmanager
    def holding(self, model: str) -> Iterator[None]:
        """Claim `model` for the block; refused (ActivationBusy) while another holds it."""
        self.claim(model)
        try:
            yield
        finally:
            self.release(model)

    def pin(self, digest: str) -> None:
        with self._lock:
            self._in_use[digest] += 1

    def unpin(self, digest: str) -> None:
        with self._lock:
            self._in_use[digest] -= 1
            if self._in_use[digest] <= 0:
                del self._in_use[digest]

    @contextlib.contextmanager
    def pinning(self, digest: str) -> Iterator[None]:
        """Keep garbage collection off `digest` for the block."""
        self.pin(digest)
        try:
            yield
        finally:
            self.unpin(digest)

    def busy(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._busy)

    def pinned(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._in_use)
