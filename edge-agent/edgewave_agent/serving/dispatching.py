"""Inference dispatch: which loaded version answers a request, and recording how it went.

Exists so every request is served by the active version (or the one asked for, if loaded)
and counted in its health window and by the observer, success or failure alike: those
counts are what the operator's wave gates decide on. Blocking; called from worker threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from edgewave_agent import errors, observers, slots
from edgewave_agent.backends import Array, LoadedModel
from edgewave_agent.serving.health import HealthWindows
from edgewave_agent.serving.ledger import Ledger
from edgewave_agent.serving.loaded import Loaded, LoadedVersions
from edgewave_agent.settings import FaultInjection


class Dispatcher:
    def __init__(
        self,
        *,
        lock: threading.RLock,
        ledger: Ledger,
        loaded: LoadedVersions,
        windows: HealthWindows,
        faults: FaultInjection,
        clock: Callable[[], float],
        observer: observers.Observer,
    ) -> None:
        self._lock = lock
        self._ledger = ledger
        self._loaded = loaded
        self._windows = windows
        self._faults = faults
        self._clock = clock
        self._observer = observer

    def _entry(self, model: str, version: str) -> Loaded:
        # Models and loaded versions are read under one lock, so an activation swapping
        # versions in between is never seen half done.
        with self._lock:
            current = self._ledger.find(model)
            if current is None or current.active is None:
                raise errors.ModelNotReady(f"model {model} is not active on this agent")
            wanted = version or current.active.version
            entry = self._loaded.get(model, wanted)
        if entry is None:
            raise errors.ModelNotReady(
                f"{model}:{wanted} is not loaded here (active: {current.active.version})"
            )
        return entry

    def loaded(self, model: str, version: str = "") -> tuple[slots.VersionRef, LoadedModel]:
        entry = self._entry(model, version)
        return entry.ref, entry.model

    def all_loaded(self) -> bool:
        """Whether every model's active version is loaded."""
        with self._lock:
            return all(
                self._loaded.has(name, s.active.version)
                for name, s in self._ledger.snapshot().items()
                if s.active is not None
            )

    def infer(
        self, model: str, *, version: str, inputs: Mapping[str, Array]
    ) -> tuple[str, dict[str, Array]]:
        entry = self._entry(model, version)
        served = entry.ref.version
        window = self._windows.window(model, served)
        started = time.perf_counter()
        ok = False
        try:
            if FaultInjection.matches(
                self._faults.slow_requests_for_versions, model=model, version=served
            ):
                time.sleep(self._faults.added_latency_seconds)
            if FaultInjection.matches(
                self._faults.fail_requests_for_versions, model=model, version=served
            ):
                raise errors.InferenceFailed(
                    f"{model}:{served} failed the request (fault injection)"
                )
            outputs = entry.model.infer(inputs)
            ok = True
            return served, outputs
        finally:
            seconds = time.perf_counter() - started
            window.record(now=self._clock(), latency_seconds=seconds, ok=ok)
            self._observer.observe_inference(model=model, version=served, seconds=seconds, ok=ok)
