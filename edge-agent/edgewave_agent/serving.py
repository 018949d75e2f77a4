"""The models this agent serves: activation, rollback, removal, restore and inference.

Carries out what `slots` decides: verify the operator's signature, check that the engine
fits, load, warm up and probe it, then persist the new state and swap it in atomically. A
failure at any step leaves the previous version serving. The state (versions held and the
activation history per model) is written crash-safely; `restore` loads the active models
after a restart, before the agent reports ready.

Thread-safe and blocking: the gRPC layer calls it from worker threads.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric import ed25519

from edgewave_agent import errors, files, observers, slots, stats
from edgewave_agent.backends import Array, Backend, GpuInfo, LoadedModel, require
from edgewave_agent.settings import AgentConfig, FaultInjection
from edgewave_agent.store import Store, validate_digest
from edgewave_api import signing
from edgewave_api.telemetry import spans
from edgewave_proto.agent.v1 import wire

log = logging.getLogger(__name__)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
Clock = Callable[[], float]


@dataclass
class _Loaded:
    ref: slots.VersionRef
    model: LoadedModel


@dataclass(frozen=True)
class VersionView:
    ref: slots.VersionRef
    state: wire.VersionState
    message: str
    health: stats.Health


@dataclass(frozen=True)
class ModelView:
    model: str
    active: slots.VersionRef | None
    previous: slots.VersionRef | None
    versions: tuple[VersionView, ...]
    health: stats.Health


@dataclass(frozen=True)
class Activation:
    view: ModelView
    previous_version: str
    unchanged: bool


@dataclass(frozen=True)
class Removal:
    versions: tuple[str, ...]
    digests: tuple[str, ...]
    freed_bytes: int


def validate_name(kind: str, value: str) -> str:
    if not NAME_PATTERN.fullmatch(value):
        raise errors.InvalidRequest(
            f"{kind} {value[:140]!r} is not valid: use 1-128 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return value


class Serving:
    def __init__(
        self,
        *,
        config: AgentConfig,
        store: Store,
        backends: Mapping[str, Backend],
        gpus: Sequence[GpuInfo],
        clock: Clock = time.time,
        observer: observers.Observer | None = None,
    ) -> None:
        self._config = config
        self._observer: observers.Observer = observer or observers.NullObserver()
        self._store = store
        self._backends = backends
        self._gpus = list(gpus)
        self._clock = clock
        self._public_key: ed25519.Ed25519PublicKey = signing.load_public_key(
            config.activation_public_key()
        )
        self._state_path = config.data_dir / "state.json"
        self._faults: FaultInjection = config.fault_injection
        self._lock = threading.RLock()
        self._models: dict[str, slots.ModelSlots] = {}
        self._loaded: dict[tuple[str, str], _Loaded] = {}
        self._windows: dict[tuple[str, str], stats.Window] = {}
        self._busy: set[str] = set()
        # Digests an activation is loading right now: garbage collection leaves them alone.
        self._in_use: collections.Counter[str] = collections.Counter()
        self.ready = False

    # State ---------------------------------------------------------------------------
    def _read_state(self) -> dict[str, slots.ModelSlots]:
        try:
            document = json.loads(self._state_path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as error:
            raise errors.AgentError(
                f"agent state {self._state_path} is unreadable ({error}): restore it from a"
                " backup or delete it to start empty"
            ) from None
        return slots.from_document(document)

    def _write_state(self, models: Mapping[str, slots.ModelSlots]) -> None:
        data = json.dumps(slots.to_document(models), indent=2, sort_keys=True).encode()
        files.atomic_write(self._state_path, data)

    def _commit(self, model: str, new: slots.ModelSlots) -> None:
        """Persist first, then change memory: a crash never leaves memory ahead of disk."""
        with self._lock:
            models = {**self._models, model: new}
            self._write_state(models)
            self._models = models

    def restore(self) -> list[str]:
        """Load every active model (and its previous one) from the persisted state.

        Returns the problems met (an active version that no longer loads falls back to
        its previous version); the agent is ready afterwards either way.
        """
        problems: list[str] = []
        self._models = self._read_state()
        for name, model_slots in sorted(self._models.items()):
            current = model_slots
            while current.active is not None:
                ref = current.active
                try:
                    self._loaded[(name, ref.version)] = self._prepare(name, ref)
                    break
                except errors.AgentError as error:
                    problems.append(f"{name}:{ref.version} did not load after restart: {error}")
                    current = slots.activation_failed(current, ref, reason=str(error))
                    if current.previous is None:
                        current = slots.deactivated(current)
                    else:
                        current = slots.rolled_back(current)
            if current != model_slots:
                self._commit(name, current)
            self._load_previous(name)
            self._report_active(name)
        for problem in problems:
            log.warning("%s", problem)
        self.ready = True
        return problems

    # Activation ----------------------------------------------------------------------
    def _window(self, model: str, version: str) -> stats.Window:
        key = (model, version)
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                window = stats.Window(self._config.health_window_seconds)
                self._windows[key] = window
            return window

    def _claim(self, model: str) -> None:
        with self._lock:
            if model in self._busy:
                raise errors.ActivationBusy(
                    f"another activation, rollback or removal of {model} is running; retry",
                    retry_after=2.0,
                )
            self._busy.add(model)

    def _release(self, model: str) -> None:
        with self._lock:
            self._busy.discard(model)

    def _slots(self, model: str) -> slots.ModelSlots:
        with self._lock:
            return self._models.get(model) or slots.ModelSlots(model=model)

    def _prepare(self, model: str, ref: slots.VersionRef) -> _Loaded:
        """Fit check, load, warm up and probe `ref`; the caller swaps it in."""
        with self._lock:
            already = self._loaded.get((model, ref.version))
        if already is not None and already.ref == ref:
            return already
        backend = require(self._backends, ref.backend)
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
                self._probe(model, ref=ref, loaded=loaded)
        except BaseException:
            loaded.close()
            raise
        return _Loaded(ref=ref, model=loaded)

    def _probe(self, model: str, *, ref: slots.VersionRef, loaded: LoadedModel) -> None:
        probe = self._config.probe
        inputs = synthetic_inputs(loaded)
        try:
            for _ in range(probe.warmup_runs):
                loaded.infer(inputs)
            for _ in range(probe.probe_runs):
                started = time.perf_counter()
                outputs = loaded.infer(inputs)
                elapsed = time.perf_counter() - started
                check_outputs(loaded, outputs)
                limit = probe.max_latency_seconds
                if limit is not None and elapsed > limit:
                    raise errors.ProbeFailed(
                        f"probe took {elapsed:.3f}s, over probe.max_latency_seconds={limit}"
                    )
        except errors.ProbeFailed as error:
            raise errors.ProbeFailed(
                f"{model}:{ref.version} failed its health probe: {error}; the previous version"
                " keeps serving"
            ) from None
        except errors.AgentError as error:
            raise errors.ProbeFailed(
                f"{model}:{ref.version} failed its warm-up: {error}; the previous version keeps"
                " serving"
            ) from None
        if FaultInjection.matches(
            self._faults.fail_probe_for_versions, model=model, version=ref.version
        ):
            raise errors.ProbeFailed(
                f"{model}:{ref.version} failed its health probe (fault injection); the previous"
                " version keeps serving"
            )

    def activate(
        self, *, model: str, version: str, digest: str, backend: str, signature: bytes
    ) -> Activation:
        try:
            result = self._activate(
                model=model, version=version, digest=digest, backend=backend, signature=signature
            )
        except (errors.EngineDoesNotFit, errors.LoadFailed, errors.ProbeFailed):
            self._observer.activation_finished(result="failed")
            raise
        except errors.AgentError:
            self._observer.activation_finished(result="refused")
            raise
        self._observer.activation_finished(result="activated")
        self._report_active(model)
        return result

    def _report_active(self, model: str) -> None:
        active = self._slots(model).active
        if active is None:
            self._observer.clear_active(model)
        else:
            self._observer.set_active(
                model=model, version=active.version, backend=active.backend, digest=active.digest
            )

    def _activate(
        self, *, model: str, version: str, digest: str, backend: str, signature: bytes
    ) -> Activation:
        validate_name("model", model)
        validate_name("version", version)
        validate_digest(digest)
        try:
            with spans.verify(digest=digest):
                signing.verify_activation(
                    self._public_key,
                    signature,
                    model=model,
                    version=version,
                    digest=digest,
                    backend=backend,
                )
        except signing.SignatureRejected as error:
            raise errors.SignatureInvalid(str(error)) from None
        backend = require(self._backends, backend).name
        ref = slots.VersionRef(version=version, digest=digest, backend=backend)
        self._claim(model)
        with self._lock:
            self._in_use[digest] += 1
        try:
            before = self._slots(model)
            slots.check_version(before, ref)
            if before.active == ref and (model, version) in self._loaded:
                return Activation(self.view(model), before.active.version, unchanged=True)
            try:
                prepared = self._prepare(model, ref)
            except (errors.EngineDoesNotFit, errors.LoadFailed, errors.ProbeFailed) as error:
                # Remembered (and shown in WatchStatus) so the operator sees why.
                self._commit(model, slots.activation_failed(before, ref, reason=str(error)))
                raise
            after = slots.activated(before, ref)
            try:
                self._commit(model, after)
            except BaseException:
                if (model, version) not in self._loaded:
                    prepared.model.close()
                raise
            with self._lock:
                self._loaded[(model, version)] = prepared
            self._unload_unneeded(model)
            previous = before.active.version if before.active else ""
            log.info("activated %s:%s (%s) replacing %r", model, version, backend, previous)
        finally:
            with self._lock:
                self._in_use[digest] -= 1
                if self._in_use[digest] <= 0:
                    del self._in_use[digest]
            self._release(model)
        self.collect_garbage()
        return Activation(self.view(model), previous, unchanged=False)

    def _load_previous(self, model: str) -> None:
        previous = self._slots(model).previous
        if not self._config.keep_previous_loaded or previous is None:
            return
        if (model, previous.version) in self._loaded:
            return
        try:
            self._loaded[(model, previous.version)] = self._prepare(model, previous)
        except errors.AgentError as error:
            log.warning(
                "previous version %s:%s not kept loaded: %s", model, previous.version, error
            )

    def _unload_unneeded(self, model: str) -> None:
        current = self._slots(model)
        keep = {current.active.version} if current.active else set()
        if self._config.keep_previous_loaded and current.previous:
            keep.add(current.previous.version)
        with self._lock:
            drop = [k for k in self._loaded if k[0] == model and k[1] not in keep]
            unloaded = [self._loaded.pop(k) for k in drop]
        for item in unloaded:
            item.model.close()

    def rollback(self, model: str) -> tuple[ModelView, str]:
        validate_name("model", model)
        self._claim(model)
        try:
            before = self._models.get(model)
            if before is None:
                raise errors.UnknownModel(f"no model {model} on this agent: nothing to roll back")
            after = slots.rolled_back(before)
            assert after.active is not None and before.active is not None
            prepared = self._prepare(model, after.active)
            self._commit(model, after)
            with self._lock:
                self._loaded[(model, after.active.version)] = prepared
            self._unload_unneeded(model)
            self._load_previous(model)
            log.info(
                "rolled %s back from %s to %s", model, before.active.version, after.active.version
            )
        finally:
            self._release(model)
        self._observer.activation_finished(result="rolled_back")
        self._report_active(model)
        return self.view(model), before.active.version

    def remove(
        self, model: str, *, version: str | None = None, digest: str | None = None
    ) -> Removal:
        validate_name("model", model)
        if digest is not None:
            validate_digest(digest)
        self._claim(model)
        try:
            before = self._models.get(model)
            if before is None:
                raise errors.UnknownModel(f"no model {model} on this agent: nothing to remove")
            after, targets = slots.removed(before, version=version, digest=digest)
            self._commit(model, after)
            self._unload_unneeded(model)
        finally:
            self._release(model)
        deleted, freed = self._delete_unused(r.digest for r in targets)
        return Removal(tuple(r.version for r in targets), deleted, freed)

    def remove_model(self, model: str) -> Removal:
        """Stop serving `model` and forget every version of it (e.g. a residency eviction)."""
        validate_name("model", model)
        self._claim(model)
        try:
            with self._lock:
                before = self._models.get(model)
                if before is None:
                    raise errors.UnknownModel(f"no model {model} on this agent: nothing to remove")
                models = {name: s for name, s in self._models.items() if name != model}
                self._write_state(models)
                self._models = models
                unloaded = [self._loaded.pop(k) for k in list(self._loaded) if k[0] == model]
            for item in unloaded:
                item.model.close()
            log.info("removed every version of %s", model)
        finally:
            self._release(model)
        self._observer.clear_active(model)
        deleted, freed = self._delete_unused(r.digest for r in before.held)
        return Removal(tuple(r.version for r in before.held), deleted, freed)

    def _delete_unused(self, digests: Iterable[str]) -> tuple[tuple[str, ...], int]:
        """Delete those of `digests` no held version refers to and no load is using."""
        with self._lock:
            used = {r.digest for s in self._models.values() for r in s.held} | set(self._in_use)
            deleted = tuple(sorted(set(digests) - used))
            return deleted, sum(self._store.delete(d) for d in deleted)

    def collect_garbage(self, needed_bytes: int = 0) -> int:
        """Apply the retention policy (keep_versions, quota); returns the bytes freed.

        Models being changed keep all their versions, and artifacts being activated or
        pushed moments ago are spared; deletion happens under the same lock an activation
        takes to mark its artifact in use, so nothing is deleted from under a load.
        """
        store_config = self._config.store
        now = self._clock()
        freed = self._store.drop_stale_partials(older_than=now - store_config.partial_ttl_seconds)
        with self._lock:
            sizes = self._store.artifacts()
            models = dict(self._models)
            busy_digests = {r.digest for m in self._busy if m in models for r in models[m].held}
            pinned = frozenset(
                d
                for d in sizes
                if now - self._store.blob_path(d).stat().st_mtime < store_config.pin_seconds
                or d in self._in_use
                or d in busy_digests
            )
            plan = slots.plan_gc(
                models,
                sizes,
                keep_versions=store_config.keep_versions,
                quota_bytes=int(store_config.quota_bytes),
                needed_bytes=needed_bytes,
                pinned=pinned,
            )
            forget = {m: v for m, v in plan.forget.items() if m not in self._busy}
            if forget:
                for name, versions in forget.items():
                    models[name] = slots.forget_versions(models[name], versions)
                self._write_state(models)
                self._models = models
            deleted = sum(self._store.delete(d) for d in plan.delete)
        if deleted:
            log.info("garbage collection freed %d bytes (%d artifacts)", deleted, len(plan.delete))
        return freed + deleted

    # Inference -----------------------------------------------------------------------
    def _serving_entry(self, model: str, version: str) -> _Loaded:
        with self._lock:
            current = self._models.get(model)
            if current is None or current.active is None:
                raise errors.ModelNotReady(f"model {model} is not active on this agent")
            wanted = version or current.active.version
            entry = self._loaded.get((model, wanted))
        if entry is None:
            raise errors.ModelNotReady(
                f"{model}:{wanted} is not loaded here (active: {current.active.version})"
            )
        return entry

    def loaded(self, model: str, version: str = "") -> tuple[slots.VersionRef, LoadedModel]:
        entry = self._serving_entry(model, version)
        return entry.ref, entry.model

    def infer(
        self, model: str, *, version: str, inputs: Mapping[str, Array]
    ) -> tuple[str, dict[str, Array]]:
        entry = self._serving_entry(model, version)
        served = entry.ref.version
        window = self._window(model, served)
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

    # Views ---------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def all_ready(self) -> bool:
        with self._lock:
            return self.ready and all(
                (name, s.active.version) in self._loaded
                for name, s in self._models.items()
                if s.active is not None
            )

    def view(self, model: str) -> ModelView:
        now = self._clock()
        current = self._slots(model)
        versions = []
        for ref in reversed(current.held):
            if ref == current.active:
                state = wire.VersionState.ACTIVE
            elif ref == current.previous:
                state = wire.VersionState.PREVIOUS
            elif current.failure(ref.version) is not None:
                state = wire.VersionState.FAILED
            else:
                state = wire.VersionState.STORED
            message = current.failure(ref.version) or ""
            health = self._window(model, ref.version).snapshot(now)
            versions.append(VersionView(ref, state, message, health))
        active_health = (
            self._window(model, current.active.version).snapshot(now)
            if current.active
            else stats.Health(self._config.health_window_seconds, 0, 0, 0.0, 0.0)
        )
        return ModelView(
            model=model,
            active=current.active,
            previous=current.previous,
            versions=tuple(versions),
            health=active_health,
        )

    def views(self) -> list[ModelView]:
        return [self.view(name) for name in self.model_names()]

    def close(self) -> None:
        with self._lock:
            loaded = list(self._loaded.values())
            self._loaded.clear()
        for item in loaded:
            item.model.close()


def synthetic_inputs(model: LoadedModel) -> dict[str, Array]:
    """Deterministic probe inputs: every dynamic dimension is 1."""
    from edgewave_agent import tensors

    inputs: dict[str, Array] = {}
    for spec in model.inputs:
        shape = tuple(d if d > 0 else 1 for d in spec.shape)
        dtype = tensors.dtype_of(spec.datatype)
        inputs[spec.name] = np.full(shape, 0.5 if dtype.kind == "f" else 1, dtype=dtype)
    return inputs


def check_outputs(model: LoadedModel, outputs: Mapping[str, Array]) -> None:
    missing = [spec.name for spec in model.outputs if spec.name not in outputs]
    if missing:
        raise errors.ProbeFailed(f"outputs {missing} are missing")
    for name, array in outputs.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise errors.ProbeFailed(f"output {name} has NaN or infinite values")
