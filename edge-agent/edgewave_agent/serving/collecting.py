"""Garbage collection of stored artifacts: the retention policy and freeing space.

Exists so the store stays within its quota and keeps only what may be needed (the last
`keep_versions` per model, always the active and previous ones). `slots.plan_gc` decides;
this module gathers what it needs (artifact sizes, pins, models being changed) and
carries the plan out under the serving lock, the same lock an activation takes to pin its
artifact, so nothing is deleted from under a load.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from edgewave_agent import slots
from edgewave_agent.serving.claims import Claims
from edgewave_agent.serving.ledger import Ledger
from edgewave_agent.settings import StoreConfig
from edgewave_agent.store import Store

log = logging.getLogger(__name__)


class Collector:
    def __init__(
        self,
        *,
        config: StoreConfig,
        store: Store,
        lock: threading.RLock,
        ledger: Ledger,
        claims: Claims,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._store = store
        self._lock = lock
        self._ledger = ledger
        self._claims = claims
        self._clock = clock

    def delete_unused(self, digests: Iterable[str]) -> tuple[tuple[str, ...], int]:
        """Delete those of `digests` no held version refers to and no load is using."""
        with self._lock:
            models = self._ledger.snapshot()
            used = {r.digest for s in models.values() for r in s.held} | self._claims.pinned()
            deleted = tuple(sorted(set(digests) - used))
            return deleted, sum(self._store.delete(d) for d in deleted)

    def collect(self, needed_bytes: int = 0) -> int:
        """Apply the retention policy (keep_versions, quota); returns the bytes freed.

        Models being changed keep all their versions, and artifacts being activated or
        pushed moments ago are spared.
        """
        config = self._config
        now = self._clock()
        freed = self._store.drop_stale_partials(older_than=now - config.partial_ttl_seconds)
        with self._lock:
            sizes = self._store.artifacts()
            models = self._ledger.snapshot()
            busy = self._claims.busy()
            in_use = self._claims.pinned()
            busy_digests = {r.digest for m in busy if m in models for r in models[m].held}
            pinned = frozenset(
                d
                for d in sizes
                if now - self._store.blob_path(d).stat().st_mtime < config.pin_seconds
                or d in in_use
                or d in busy_digests
            )
            plan = slots.plan_gc(
                models,
                sizes,
                keep_versions=config.keep_versions,
                quota_bytes=int(config.quota_bytes),
                needed_bytes=needed_bytes,
                pinned=pinned,
            )
            kept = slots.apply_gc(models, plan, busy=busy)
            if kept != models:
                self._ledger.replace(kept)
            deleted = sum(self._store.delete(d) for d in plan.delete)
        if deleted:
            log.info("garbage collection freed %d bytes (%d artifacts)", deleted, len(plan.delete))
        return freed + deleted
