"""One engine build, start to finish, in the calling process.

Check the model file against the key's digest, inspect it, check the shape profiles,
convert precision, then hand it to the backend. The build workers, the on-agent path and
the CLI's in-process mode all run exactly this, so they fail the same way on the same input.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from edgewave_compiler import backends, errors, intake, keys, precisions


@dataclass(frozen=True)
class BuildOutput:
    artifact: Path
    digest: str
    """sha256 of the engine file."""
    size_bytes: int
    build_seconds: float
    log: str
    toolchain: Mapping[str, str] = field(default_factory=dict)


def toolchain_versions(builder: backends.EngineBuilder) -> dict[str, str]:
    return {
        builder.backend.value: builder.version,
        "onnx": onnx.__version__,
        "python": platform.python_version(),
    }


def build_engine(
    *,
    key: keys.BuildKey,
    model_path: Path,
    out_dir: Path,
    clock: Callable[[], float] = time.perf_counter,
) -> BuildOutput:
    """Build `key` from the ONNX file at `model_path` into `out_dir`; raises typed errors."""
    started = clock()
    log = backends.BuildLog()
    builder = backends.load(key.backend)
    if builder.version != key.backend_version:
        raise errors.BackendUnavailable(
            f"this build needs {key.backend.value} {key.backend_version} but {builder.version} is"
            " installed here: install that version, or re-plan so the key matches this builder"
        )
    if not model_path.is_file():
        raise errors.ModelNotFound(
            f"model file {model_path} is gone before its build: fetch the model again"
        )
    got = intake.sha256_file(model_path)
    if got != key.model_sha256:
        raise errors.DigestMismatch(uri=str(model_path), expected=key.model_sha256)
    model = intake.load(model_path)
    info = intake.inspect_model(model, path=model_path, sha256=got)
    log.write(
        f"model {got[:12]} opset {info.opset}: inputs "
        + ", ".join(t.describe() for t in info.inputs)
        + "; outputs "
        + ", ".join(t.describe() for t in info.outputs)
    )
    if key.backend.needs_gpu:
        intake.check_profiles(info, key.profiles)
    prepared = precisions.prepare(model, precision=key.precision, backend=key.backend)
    out_dir.mkdir(parents=True, exist_ok=True)
    artifact = out_dir / f"engine{builder.artifact_suffix}"
    builder.build(model=prepared, info=info, key=key, out_path=artifact, log=log)
    digest = intake.sha256_file(artifact)
    seconds = clock() - started
    log.write(f"built {artifact.stat().st_size} bytes in {seconds:.2f}s, sha256 {digest}")
    return BuildOutput(
        artifact=artifact,
        digest=digest,
        size_bytes=artifact.stat().st_size,
        build_seconds=seconds,
        log=log.text(),
        toolchain=toolchain_versions(builder),
    )
