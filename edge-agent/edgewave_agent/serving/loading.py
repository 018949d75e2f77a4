"""Bringing versions into memory and out: fit check, load, warm-up and probe, unload.

Exists so that what a version must pass before it may serve lives in one place, used by
activation, rollback and restore alike: its artifact is stored, its backend is installed,
its engine fits this node, it loads, and it passes the probe. A version that fails is
closed again and never swapped in. Which versions stay loaded is decided by
`slots.kept_loaded`; this module carries it out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from edgewave_agent import errors, slots
from edgewave_agent.backends import Backend, GpuInfo, require
from edgewave_agent.serving import probing
from edgewave_agent.serving.loaded import Loaded, LoadedVersions
from edgewave_agent.settings import AgentConfig, FaultInjection
from edgewave_agent.store import Store
from edgewave_api.telemetry import spans

log = logging.getLogger(__name__)


class Loader:
    def __init__(
        self,
        *,
        config: AgentConfig,
        store: Store,
        backends: Mapping[str, Backend],
        gpus: Sequence[GpuInfo],
        loaded: LoadedVersions,
    ) -> None:
        self._config = config
        self._faults: FaultInjection = config.fault_injection
        self._store = store
        self._backends = backends
        self._gpus = list(gpus)
        self._loaded = loaded

    def backend(self, name: str) -> Backend:
        """The installed backend `name`; BackendUnavailable otherwise."""
        return require(self._backends, name)

    def prepare(self, model: str, ref: slots.VersionRef) -> Loaded:
        """Fit check, load, warm up and probe `ref`; the caller swaps it in."""
        already = self._loaded.get(model, ref.version)
        if already is not None and already.ref == ref:
            return already
        backend = self.backend(ref.backend)
        if not self._store.has(ref.digest):
            raise errors.ArtifactMissing(
                f"artifact {ref.digest[:12]} of {model}:{ref.version} is not stored here: push it"
                " (Stat shows what is missing) before activating"
            )
        path = self._store.blob_path(ref.digest)
        if FaultInjection.matches(
            self._faults.fail_load_for_versions, model=model, version=ref.version
        ):
            raise errors.LoadFailed(f"{model}:{ref.version} failed to load (fault injection)")
        with spans.load(model=model, version=ref.version, backend=ref.backend):
            backend.check_fit(path, gpus=self._gpus)
            loaded = backend.load(path)
        try:
            with spans.warm_up(model=model, version=ref.version):
                probing.probe(
                    model, ref=ref, loaded=loaded, config=self._config.probe, faults=self._faults
                )
        except BaseException:
            loaded.close()
            raise
        return Loaded(ref=ref, model=loaded)

    def load_previous(self, model: str, current: slots.ModelSlots) -> None:
        """Keep the previous version loaded too (if configured), for a fast rollback."""
        previous = current.previous
        if not self._config.keep_previous_loaded or previous is None:
            return
        if self._loaded.has(model, previous.version):
            return
        try:
            self._loaded.put(model, self.prepare(model, previous))
        except errors.AgentError as error:
            log.warning(
                "previous version %s:%s not kept loaded: %s", model, previous.version, error
            )

    def unload_unneeded(self, model: str, current: slots.ModelSlots) -> None:
        keep = slots.kept_loaded(current, keep_previous=self._config.keep_previous_loaded)
        self._loaded.keep_only(model, keep)
