"""Removing versions of a model, or the whole model, and deleting their artifacts.

Exists so removal follows the same safe order as activation: `slots` decides what may go
(never the active or previous version, unless the whole model goes), the new state is
persisted before anything is unloaded, and artifacts are deleted only when no other
held version refers to them and no load is using them. Blocking; called from threads.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from edgewave_agent import errors, observers, owners, slots
from edgewave_agent.serving.claims import Claims
from edgewave_agent.serving.collecting import Collector
from edgewave_agent.serving.ledger import Ledger
from edgewave_agent.serving.loaded import LoadedVersions
from edgewave_agent.serving.loading import Loader
from edgewave_agent.store import validate_digest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Removal:
    versions: tuple[str, ...]
    digests: tuple[str, ...]
    freed_bytes: int


class Remover:
    def __init__(
        self,
        *,
        lock: threading.RLock,
        ledger: Ledger,
        loaded: LoadedVersions,
        claims: Claims,
        loader: Loader,
        collector: Collector,
        observer: observers.Observer,
    ) -> None:
        self._lock = lock
        self._ledger = ledger
        self._loaded = loaded
        self._claims = claims
        self._loader = loader
        self._collector = collector
        self._observer = observer

    def remove(
        self,
        model: str,
        *,
        version: str | None = None,
        digest: str | None = None,
        owner: owners.Owner | None = None,
    ) -> Removal:
        """Forget the versions of `model` named by `version` or `digest` (for `owner`)."""
        slots.validate_name("model", model)
        if digest is not None:
            validate_digest(digest)
        with self._claims.holding(model):
            before = self._ledger.find(model)
            if before is None:
                raise errors.UnknownModel(f"no model {model} on this agent: nothing to remove")
            owners.check_removal(model, current=before.owner, requested=owner)
            after, targets = slots.removed(before, version=version, digest=digest)
            self._ledger.commit(model, after)
            self._loader.unload_unneeded(model, after)
        deleted, freed = self._collector.delete_unused(r.digest for r in targets)
        return Removal(tuple(r.version for r in targets), deleted, freed)

    def remove_model(self, model: str, *, owner: owners.Owner | None = None) -> Removal:
        """Stop serving `model` and forget every version of it (e.g. a residency eviction),
        unless another rollout than `owner` owns it."""
        slots.validate_name("model", model)
        with self._claims.holding(model):
            current = self._ledger.find(model)
            owners.check_removal(model, current=current.owner if current else None, requested=owner)
            with self._lock:
                models, targets = slots.without_model(self._ledger.snapshot(), model)
                self._ledger.replace(models)
            self._loaded.drop_model(model)
            log.info("removed every version of %s", model)
        self._observer.clear_active(model)
        deleted, freed = self._collector.delete_unused(r.digest for r in targets)
        return Removal(tuple(r.version for r in targets), deleted, freed)
