"""On-agent engine builds, for GPU targets no central builder serves (Jetson, Hopper, ...).

The operator pushes the ONNX model like any artifact, then calls Build with the compiler's
build key (JSON). This module checks the model is stored, runs the compiler library's
`build_on_agent` with this node's toolchain (in a child process, so a toolchain crash
cannot take the agent down), and stores the engine in the content-addressed store so it
can be activated like a pushed one.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pydantic

from edgewave_agent import errors
from edgewave_agent.store import Store
from edgewave_api.errors import EdgewaveError


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
    """Build the engine `spec_json` describes from its stored ONNX model; blocking."""
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
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="build-", dir=workdir))
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
