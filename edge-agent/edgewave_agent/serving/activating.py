"""Changing which version serves: activation and rollback.

Exists to carry out, in a safe order, what `slots` decides (the operator's grant was
checked before, by `granting`): claim the model, load and probe the new version
(`loading`), persist the new slots (`ledger`) and only then swap the loaded version in.
A failure at any step leaves the previous version serving; a failed load or probe is
remembered in the slots so the operator sees why. Blocking; called from worker threads.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from edgewave_agent import errors, observers, owners, slots
from edgewave_agent.serving.claims import Claims
from edgewave_agent.serving.collecting import Collector
from edgewave_agent.serving.ledger import Ledger
from edgewave_agent.serving.loaded import LoadedVersions
from edgewave_agent.serving.loading import Loader
from edgewave_agent.serving.views import ModelView, Views
from edgewave_agent.store import validate_digest

log = logging.getLogger(__name__)
# Failures of the version itself (counted as "failed"); other errors are refusals.
_VERSION_FAILURES = (errors.EngineDoesNotFit, errors.LoadFailed, errors.ProbeFailed)


@dataclass(frozen=True)
class Activation:
    view: ModelView
    previous_version: str
    unchanged: bool


def report_active(observer: observers.Observer, current: slots.ModelSlots) -> None:
    """Tell the observer which version of the model serves now, if any."""
    active = current.active
    if active is None:
        observer.clear_active(current.model)
    else:
        observer.set_active(
            model=current.model,
            version=active.version,
            backend=active.backend,
            digest=active.digest,
        )


class Activator:
    def __init__(
        self,
        *,
        ledger: Ledger,
        loaded: LoadedVersions,
        claims: Claims,
        loader: Loader,
        collector: Collector,
        views: Views,
        observer: observers.Observer,
    ) -> None:
        self._ledger = ledger
        self._loaded = loaded
        self._claims = claims
        self._loader = loader
        self._collector = collector
        self._views = views
        self._observer = observer

    def activate(
        self,
        *,
        model: str,
        version: str,
        digest: str,
        backend: str,
        owner: owners.Owner | None = None,
    ) -> Activation:
        try:
            result = self._activate(
                model=model, version=version, digest=digest, backend=backend, owner=owner
            )
        except _VERSION_FAILURES:
            self._observer.activation_finished(result="failed")
            raise
        except errors.AgentError:
            self._observer.activation_finished(result="refused")
            raise
        self._observer.activation_finished(result="activated")
        report_active(self._observer, self._ledger.get(model))
        return result

    def _checked(self, *, model: str, version: str, digest: str, backend: str) -> slots.VersionRef:
        """The version an activation names, once its names are checked."""
        slots.validate_name("model", model)
        slots.validate_name("version", version)
        validate_digest(digest)
        backend = self._loader.backend(backend).name
        return slots.VersionRef(version=version, digest=digest, backend=backend)

    def _activate(
        self,
        *,
        model: str,
        version: str,
        digest: str,
        backend: str,
        owner: owners.Owner | None,
    ) -> Activation:
        ref = self._checked(model=model, version=version, digest=digest, backend=backend)
        with self._claims.holding(model), self._claims.pinning(digest):
            stored = self._ledger.get(model)
            claimed = owners.claim(model, current=stored.owner, requested=owner)
            before = dataclasses.replace(stored, owner=claimed)
            slots.check_version(before, ref)
            if before.active == ref and self._loaded.has(model, version):
                if before != stored:
                    self._ledger.commit(model, before)
                return Activation(self._views.view(model), before.active.version, unchanged=True)
            self._swap_in(model, before=before, ref=ref)
            previous = before.active.version if before.active else ""
            log.info("activated %s:%s (%s) replacing %r", model, version, ref.backend, previous)
        self._collector.collect()
        return Activation(self._views.view(model), previous, unchanged=False)

    def _swap_in(self, model: str, *, before: slots.ModelSlots, ref: slots.VersionRef) -> None:
        """Load and probe `ref`, persist it as active, then serve it; the caller holds `model`."""
        try:
            prepared = self._loader.prepare(model, ref)
        except _VERSION_FAILURES as error:
            # Remembered (and shown in WatchStatus) so the operator sees why.
            self._ledger.commit(model, slots.activation_failed(before, ref, reason=str(error)))
            raise
        after = slots.activated(before, ref)
        try:
            self._ledger.commit(model, after)
        except BaseException:
            if not self._loaded.has(model, ref.version):
                prepared.model.close()
            raise
        self._loaded.put(model, prepared)
        self._loader.unload_unneeded(model, after)

    def rollback(self, model: str) -> tuple[ModelView, str]:
        slots.validate_name("model", model)
        with self._claims.holding(model):
            before = self._ledger.find(model)
            if before is None:
                raise errors.UnknownModel(f"no model {model} on this agent: nothing to roll back")
            after = slots.rolled_back(before)
            assert after.active is not None and before.active is not None
            prepared = self._loader.prepare(model, after.active)
            self._ledger.commit(model, after)
            self._loaded.put(model, prepared)
            self._loader.unload_unneeded(model, after)
            self._loader.load_previous(model, after)
            log.info(
                "rolled %s back from %s to %s", model, before.active.version, after.active.version
            )
        self._observer.activation_finished(result="rolled_back")
        report_active(self._observer, self._ledger.get(model))
        return self._views.view(model), before.active.version
