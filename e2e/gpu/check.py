"""GPU machine check: the agent's NVML inventory, its fit check, and an inference. Self-checking.

Run by `e2e/gpu/check.sh` on a machine with an NVIDIA GPU and no network, where only CUDA,
numpy, onnxruntime (CPU) and nvidia-ml-py are installed: no pydantic, no cryptography, no
grpc. So this imports the agent's light modules straight from the source tree
(`edgewave_agent.inventory`, `.backends`), and a guard refuses any import of the heavy
dependencies, so a change that drags one into this path fails here, loudly, instead of
silently testing something else.

Checks, each printing one `PASS`/`FAIL` line (exit status 1 if any fails):

1. inventory: `inventory.nvml_gpus()` reports every GPU nvidia-smi lists, with the same
   name and compute capability.
2. fit: an engine built for another compute capability is refused with a reason. With the
   TensorRT-RTX runtime importable, the agent's real check runs: an engine built ahead of
   time for SM86 (SM120 on an SM86 GPU) must be refused as "built for another compute
   capability" (TensorRT-RTX has no Hopper target, so on an H100/H200 every RTX engine is).
   Without the runtime, the agent must refuse the tensorrt-rtx backend as not installed.
3. inference: the agent's ONNX Runtime backend loads `linear.onnx` (y = 2·[1..4]·x + 0.25)
   and answers exactly.

`--cpu` (for the CPU-side unit test of this script) skips the GPU assertions of 1 and 2.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MODEL = HERE / "linear.onnx"
MODEL_SHA256 = "2c115383152d1dc0cdf62de72874d798431f1db135ab621a06ffd7be680b9fdb"
HEAVY = ("pydantic", "pydantic_core", "cryptography", "grpc", "yaml", "onnx", "kopf")
"""Not installed on the GPU machine: importing one here is a failure of this check."""


class _HeavyImportGuard(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.split(".", maxsplit=1)[0] in HEAVY:
            raise ImportError(
                f"e2e/gpu/check.py must not import {fullname}: it is not installed on the GPU"
                " machine; keep it out of the agent's inventory and backend modules"
            )


def _setup_path() -> None:
    sys.meta_path.insert(0, _HeavyImportGuard())
    for source in (REPO / "edge-agent", REPO / "api"):
        sys.path.insert(0, str(source))


Result = tuple[bool, str]


def check_inventory(*, cpu: bool) -> Result:
    from edgewave_agent import inventory

    found = inventory.nvml_gpus()
    described = ", ".join(
        f"{g.name} (SM{g.compute_capability[0]}.{g.compute_capability[1]},"
        f" {g.memory_bytes >> 20} MiB, driver {g.driver_version})"
        for g in found
    )
    if cpu:
        return True, f"NVML reports {len(found)} GPU(s) {described} (not checked: --cpu)"
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False, "nvidia-smi is not installed: cannot cross-check NVML"
    listed = subprocess.run(
        [smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if listed.returncode != 0:
        return False, f"nvidia-smi failed: {listed.stderr.strip()[:200]}"
    expected = []
    for line in listed.stdout.strip().splitlines():
        name, capability = (part.strip() for part in line.rsplit(",", 1))
        major, minor = capability.split(".")
        expected.append((name, (int(major), int(minor))))
    got = [(g.name, g.compute_capability) for g in found]
    if not found or got != expected:
        return False, f"NVML reports {got} but nvidia-smi lists {expected}"
    return True, f"NVML reports {described}"


def _rtx_engine(trt: object, directory: Path, capability: str) -> Path:
    """A tiny engine built ahead of time for `capability` (e.g. "86"), from linear.onnx."""
    t: object = trt
    logger = t.Logger(t.Logger.ERROR)  # type: ignore[attr-defined]
    builder = t.Builder(logger)  # type: ignore[attr-defined]
    network = builder.create_network(0)
    parser = t.OnnxParser(network, logger)  # type: ignore[attr-defined]
    if not parser.parse(MODEL.read_bytes()):
        raise RuntimeError("TensorRT-RTX could not parse linear.onnx")
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 4), (2, 4), (8, 4))
    config.add_optimization_profile(profile)
    config.num_compute_capabilities = 1
    config.set_compute_capability(getattr(t.ComputeCapability, f"SM{capability}"), 0)  # type: ignore[attr-defined]
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise RuntimeError(f"TensorRT-RTX built no engine for SM{capability}")
    path = directory / f"sm{capability}.engine"
    path.write_bytes(bytes(engine))
    return path


def check_fit(*, cpu: bool) -> Result:
    from edgewave_agent import backends, errors, inventory

    gpus = inventory.nvml_gpus()
    if not gpus and not cpu:
        return False, "no GPU to check an engine against"
    installed = backends.installed()
    if "tensorrt-rtx" not in installed:
        try:
            backends.require(installed, "tensorrt-rtx")
        except errors.BackendUnavailable as error:
            return True, f"tensorrt-rtx runtime absent here; the agent refuses: {error}"
        return False, "tensorrt-rtx is not installed, yet the agent offers it"
    if cpu:
        return True, "tensorrt-rtx is installed (engine check not run: --cpu)"
    return _check_rtx_fit(installed["tensorrt-rtx"], gpus=gpus)


def _check_rtx_fit(backend: Any, *, gpus: Sequence[Any]) -> Result:
    """The agent's TensorRT-RTX fit check, given an engine for another compute capability."""
    import tensorrt_rtx

    from edgewave_agent import errors

    major, minor = gpus[0].compute_capability
    other = "120" if (major, minor) == (8, 6) else "86"
    with tempfile.TemporaryDirectory() as scratch:
        engine = _rtx_engine(tensorrt_rtx, Path(scratch), other)
        try:
            backend.check_fit(engine, gpus=gpus)
        except errors.EngineDoesNotFit as error:
            if "another compute capability" not in str(error):
                return False, f"refused, but not for its compute capability: {error}"
            return True, f"an SM{other} engine on SM{major}.{minor} is refused: {error}"
    return False, f"an SM{other} engine was accepted on an SM{major}.{minor} GPU"


def check_inference() -> Result:
    import numpy as np

    from edgewave_agent import backends

    if hashlib.sha256(MODEL.read_bytes()).hexdigest() != MODEL_SHA256:
        return False, f"{MODEL.name} is not the model this check expects (sha256 differs)"
    backend = backends.require(backends.installed(), "onnxruntime")
    model = backend.load(MODEL)
    try:
        x = np.arange(8, dtype=np.float32).reshape(2, 4)
        y = model.infer({"x": x})["y"]
    finally:
        model.close()
    expected = x * (np.arange(1, 5, dtype=np.float32) * 2.0) + np.float32(0.25)
    if not np.array_equal(np.asarray(y), expected):
        return (
            False,
            f"onnxruntime {backend.version()} answered {y.tolist()}, not {expected.tolist()}",
        )
    return True, f"onnxruntime {backend.version()} answered y = {np.asarray(y).tolist()}"


def main(argv: Sequence[str]) -> int:
    cpu = "--cpu" in argv
    _setup_path()
    checks: list[tuple[str, Callable[[], Result]]] = [
        ("inventory", lambda: check_inventory(cpu=cpu)),
        ("fit", lambda: check_fit(cpu=cpu)),
        ("inference", check_inference),
    ]
    failed = 0
    for name, check in checks:
        try:
            ok, detail = check()
        except Exception as error:  # report every check, whatever breaks
            ok, detail = False, f"{type(error).__name__}: {error}"
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
    if loaded:
        print(f"FAIL imports: heavy modules loaded: {loaded}", flush=True)
        failed += 1
    print(f"{'OK' if not failed else 'FAILED'}: {3 - min(failed, 3)} of 3 checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
