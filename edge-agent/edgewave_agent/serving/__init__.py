"""The models this agent serves: the one object the servicers call to change or use them.

`Serving` only composes the parts, each a module with one concern:
`granting` (the operator's grant for every change), `activating` (activation, rollback),
`removing`, `restoring` (after a restart),
`dispatching` (inference and its health counts), `collecting` (garbage collection),
`views` (what Describe and WatchStatus report), `loading` and `probing` (what a version
passes before it serves), and the state they share: `ledger` (persisted slots), `loaded`
(versions in memory), `claims` (models being changed, artifacts being loaded) and
`health` (windows). Every version transition is decided in `edgewave_agent.slots`.

One re-entrant lock guards that shared state, so a reader sees the slots and the loaded
versions consistently, and garbage collection deletes under the lock an activation takes
to pin its artifact. Thread-safe and blocking: the gRPC layer calls it from worker threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

from edgewave_agent import observers, owners, slots
from edgewave_agent.backends import Array, Backend, GpuInfo, LoadedModel
from edgewave_agent.serving import activating, restoring
from edgewave_agent.serving.activating import Activation, Activator
from edgewave_agent.serving.claims import Claims
from edgewave_agent.serving.collecting import Collector
from edgewave_agent.serving.dispatching import Dispatcher
from edgewave_agent.serving.granting import Gate
from edgewave_agent.serving.health import HealthWindows
from edgewave_agent.serving.ledger import Ledger
from edgewave_agent.serving.loaded import LoadedVersions
from edgewave_agent.serving.loading import Loader
from edgewave_agent.serving.removing import Removal, Remover
from edgewave_agent.serving.views import ModelView, Views
from edgewave_agent.settings import AgentConfig
from edgewave_agent.store import Store
from edgewave_api import grants, signing


class Serving:
    def __init__(
        self,
        *,
        config: AgentConfig,
        store: Store,
        backends: Mapping[str, Backend],
        gpus: Sequence[GpuInfo],
        clock: Callable[[], float] = time.time,
        observer: observers.Observer | None = None,
    ) -> None:
        self._observer: observers.Observer = observer or observers.NullObserver()
        lock = threading.RLock()
        self.ledger = Ledger(config.data_dir / "state.json", lock=lock)
        self.loaded_versions = LoadedVersions(lock=lock)
        self.claims = Claims(lock=lock)
        windows = HealthWindows(config.health_window_seconds, lock=lock)
        self._views = Views(ledger=self.ledger, windows=windows, clock=clock)
        self._loader = Loader(
            config=config, store=store, backends=backends, gpus=gpus, loaded=self.loaded_versions
        )
        self._collector = Collector(
            config=config.store,
            store=store,
            lock=lock,
            ledger=self.ledger,
            claims=self.claims,
            clock=clock,
        )
        self._gate = Gate(
            public_key=signing.load_public_key(config.activation_public_key()),
            ledger=self.ledger,
            clock=clock,
        )
        self._activator = Activator(
            ledger=self.ledger,
            loaded=self.loaded_versions,
            claims=self.claims,
            loader=self._loader,
            collector=self._collector,
            views=self._views,
            observer=self._observer,
        )
        self._remover = Remover(
            lock=lock,
            ledger=self.ledger,
            loaded=self.loaded_versions,
            claims=self.claims,
            loader=self._loader,
            collector=self._collector,
            observer=self._observer,
        )
        self._dispatcher = Dispatcher(
            lock=lock,
            ledger=self.ledger,
            loaded=self.loaded_versions,
            windows=windows,
            faults=config.fault_injection,
            clock=clock,
            observer=self._observer,
        )
        self.ready = False

    def restore(self) -> list[str]:
        """Load every active model (and its previous one) from the persisted state.

        Returns the problems met (an active version that no longer loads falls back to
        its previous version); the agent is ready afterwards either way.
        """
        problems = restoring.restore(
            ledger=self.ledger,
            loaded=self.loaded_versions,
            loader=self._loader,
            report=lambda current: activating.report_active(self._observer, current),
        )
        self.ready = True
        return problems

    def admit(
        self,
        *,
        payload: bytes,
        signature: bytes,
        call: grants.Call,
        requested_owner: owners.Owner | None = None,
    ) -> grants.Grant:
        """Check the operator's grant for `call` (and remember its sequence); see `granting`."""
        return self._gate.admit(
            payload=payload, signature=signature, call=call, requested_owner=requested_owner
        )

    def grant_sequences(self) -> dict[str, int]:
        """The highest grant sequence accepted per model (Describe reports it)."""
        return self.ledger.sequences()

    def activate(
        self,
        *,
        model: str,
        version: str,
        digest: str,
        backend: str,
        owner: owners.Owner | None = None,
    ) -> Activation:
        return self._activator.activate(
            model=model, version=version, digest=digest, backend=backend, owner=owner
        )

    def rollback(self, model: str) -> tuple[ModelView, str]:
        return self._activator.rollback(model)

    def remove(
        self,
        model: str,
        *,
        version: str | None = None,
        digest: str | None = None,
        owner: owners.Owner | None = None,
    ) -> Removal:
        return self._remover.remove(model, version=version, digest=digest, owner=owner)

    def remove_model(self, model: str, *, owner: owners.Owner | None = None) -> Removal:
        """Stop serving `model` and forget every version of it (e.g. a residency eviction)."""
        return self._remover.remove_model(model, owner=owner)

    def collect_garbage(self, needed_bytes: int = 0) -> int:
        """Apply the retention policy (keep_versions, quota); returns the bytes freed."""
        return self._collector.collect(needed_bytes)

    def loaded(self, model: str, version: str = "") -> tuple[slots.VersionRef, LoadedModel]:
        return self._dispatcher.loaded(model, version)

    def infer(
        self, model: str, *, version: str, inputs: Mapping[str, Array]
    ) -> tuple[str, dict[str, Array]]:
        return self._dispatcher.infer(model, version=version, inputs=inputs)

    def model_names(self) -> list[str]:
        return self.ledger.names()

    def all_ready(self) -> bool:
        return self.ready and self._dispatcher.all_loaded()

    def view(self, model: str) -> ModelView:
        return self._views.view(model)

    def views(self) -> list[ModelView]:
        return self._views.views()

    def close(self) -> None:
        self.loaded_versions.close()
