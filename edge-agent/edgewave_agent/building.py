"""On-agent engine builds, for GPU targets no central builder serves (Jetson, Hopper, ...).

The operator pushes the ONNX model like any artifact, then calls Build with the compiler's
build key (JSON). This module checks the model is stored, runs the compiler library's
`build_on_agent` with this node's toolchain (in a child process, so a toolchain crash
cannot take the agent down), and stores the engine in the content-addressed store so it
can be activated like a pushed one.

Builds are bounded: at most `MAX_CONCURRENT_BUILDS` run at once on an agent (a build uses
the whole GPU and much memory; more are refused as busy, to retry), and every build has a
timeout: the request's, capped at `MAX_BUILD_TIMEOUT_S`, or `DEFAULT_BUILD_TIMEOUT_S`
when it names none. The build worker runs in an empty private working directory
(`edgewave_compiler.workdirs`), so no path a model names can resolve to the agent's files.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pydantic

from edgewave_agent import errors
from edgewave_agent.store import Store
from edgewave_api.errors import EdgewaveError

MAX_CONCURRENT_BUILDS = 1
DEFAULT_BUILD_TIMEOUT_S = 1800.0
MAX_BUILD_TIMEOUT_S = 4 * 3600.0
_BUILDS = threading.BoundedSemaphore(MAX_CONCURRENT_BUILDS)
"""Builds running in this process (one agent per process)."""


def build_timeout(requested: float | None) -> float:
    """The timeout a build runs under: never none, never above the cap. Pure."""
    if requested is None or requested <= 0:
        return DEFAULT_BUILD_TIMEOUT_S
    return min(requested, MAX_BUILD_TIMEOUT_S)


@dataclass(frozen=True)
class Built:
    engine_digest: str
    size_bytes: int
    build_seconds: float
    backend: str
    backend_version: str
    compute_capability: str
    log: str
    key_digest: str


def build(*, store: Store, spec_json: str, workdir: Path, timeout_s: float | None) -> Built:
    """Build the engine `spec_json` describes from its stored ONNX model; blocking.

    Refused as busy while `MAX_CONCURRENT_BUILDS` builds run; `timeout_s` is bounded by
    `build_timeout`.
    """
    if not _BUILDS.acquire(blocking=False):
        raise errors.ActivationBusy(
            f"this agent is running {MAX_CONCURRENT_BUILDS} build(s) already, its limit:"
            " retry when it has finished"
        )
    try:
        return _build(
            store=store, spec_json=spec_json, workdir=workdir, timeout_s=build_timeout(timeout_s)
        )
    finally:
        _BUILDS.release()


def _build(*, store: Store, spec_json: str, workdir: Path, timeout_s: float) -> Built:
    try:
        from edgewave_compiler import keys, onagent
    except ImportError as error:
        raise errors.BackendUnavailable(
            f"this agent cannot build engines ({error}): install edgewave with its compiler"
        ) from None
    try:
        document = json.loads(spec_json)
        if isinstance(document, dict):
            # The canonical form (BuildKey.canonical_json) carries its schema tag.
            document.pop("schema", None)
        spec = keys.BuildSpec.model_validate(document)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise errors.InvalidRequest(
            f"build spec is not a valid build key: {where}: {first['msg']}"
        ) from None
    except ValueError as error:
        raise errors.InvalidRequest(f"build spec is not JSON: {error}") from None
    if not store.has(spec.model_sha256):
        raise errors.ArtifactMissing(
            f"ONNX model {spec.model_sha256[:12]} is not stored on this agent: push it first"
        )
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="build-", dir=workdir))  # 0700, the engine's home
    try:
        try:
            result = onagent.build_on_agent(
                onnx_path=store.blob_path(spec.model_sha256),
                spec=spec,
                workdir=scratch,
                timeout_s=timeout_s,
            )
        except EdgewaveError as error:
            if error.temporary:
                raise errors.ActivationBusy(f"build failed, retry: {error}") from None
            raise errors.BuildFailed(f"building {spec.describe()} failed: {error}") from None
        digest, size = store.import_file(result.engine_path)
        if digest != result.digest:
            raise errors.BuildFailed(
                f"the engine file changed after the build ({result.digest[:12]} -> {digest[:12]})"
            )
        return Built(
            engine_digest=digest,
            size_bytes=size,
            build_seconds=result.build_seconds,
            backend=result.backend,
            backend_version=result.backend_version,
            compute_capability=result.compute_capability or "",
            log=result.log,
            key_digest=result.key_digest,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
