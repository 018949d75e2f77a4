"""Builds on the edge agent, for GPUs no central builder can target (Jetson, Hopper, ...).

The operator plans a build with `BuildLocation.AGENT`, pushes the ONNX model to the agent
(content-addressed by the model's sha256, like any artifact) and sends the `BuildSpec` (the
build key as JSON). The agent's `Build` RPC calls `build_on_agent`, which builds with the
agent's local toolchain and reports the engine's digest; the operator records it with
`EngineCache.record_agent_build`, so the engine record says which agent built it.

By default the build runs in a child process (the same worker the operator uses): a
toolchain crash cannot take the agent down, and a timeout kills the build. Either way the
build runs in an empty private working directory (`workdirs`); `isolated=False` changes this
process's working directory for the build, so it is for tests and single-threaded tools only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from edgewave_compiler import building, compiling, errors, intake, keys, workdirs

BuildSpec = keys.BuildSpec


@dataclass(frozen=True)
class BuildResult:
    engine_path: Path
    digest: str
    """sha256 of the engine file: what the agent stores it under and reports."""
    size_bytes: int
    build_seconds: float
    log: str
    backend: str
    backend_version: str
    compute_capability: str | None
    key_digest: str


def _run_isolated(
    *, spec: BuildSpec, onnx_path: Path, workdir: Path, timeout_s: float | None
) -> building.BuildOutput:
    request = compiling.worker_request(key=spec, model_path=onnx_path, out_dir=workdir)
    with (
        workdirs.private_dir() as cwd,
        subprocess.Popen(
            [sys.executable, "-m", "edgewave_compiler.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            text=True,
            cwd=cwd,
        ) as process,
    ):
        try:
            stdout, stderr = process.communicate(json.dumps(request), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise errors.BuildCrashed(
                f"building {spec.describe()} on this agent took longer than {timeout_s:.0f}s and"
                " was stopped; raise the build timeout or build a smaller profile"
            ) from None
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return compiling.parse_worker_output(
        stdout=stdout, stderr=stderr, returncode=process.returncode, key=spec
    )


def build_on_agent(
    *,
    onnx_path: Path,
    spec: BuildSpec,
    workdir: Path,
    isolated: bool = True,
    timeout_s: float | None = None,
) -> BuildResult:
    """Build `spec` from the ONNX file with this host's toolchain; raises typed errors.

    The model's sha256 must equal `spec.model_sha256`, and `spec.backend_version` the
    installed toolchain's version. The engine is written under `workdir`.
    """
    got = intake.sha256_file(onnx_path)
    if got != spec.model_sha256:
        raise errors.DigestMismatch(uri=str(onnx_path), expected=spec.model_sha256)
    workdir.mkdir(parents=True, exist_ok=True)
    if isolated:
        output = _run_isolated(spec=spec, onnx_path=onnx_path, workdir=workdir, timeout_s=timeout_s)
    else:
        with workdirs.inside_private_dir():
            output = building.build_engine(
                key=spec, model_path=onnx_path.resolve(), out_dir=workdir.resolve()
            )
    return BuildResult(
        engine_path=output.artifact,
        digest=output.digest,
        size_bytes=output.size_bytes,
        build_seconds=output.build_seconds,
        log=output.log,
        backend=spec.backend.value,
        backend_version=spec.backend_version,
        compute_capability=spec.compute_capability,
        key_digest=spec.digest(),
    )
