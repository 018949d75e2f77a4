"""Inference backends behind one small interface, and the registry of those installed here.

`Backend.check_fit` refuses an engine built for another GPU or runtime before anything is
loaded; `Backend.load` returns a `LoadedModel` with `infer`, its tensor metadata and
`close`. Backend modules import their runtime lazily, so an agent without TensorRT still
runs ONNX Runtime models.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edgewave_agent import errors

Array = npt.NDArray[np.generic]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    # KServe v2 datatype, e.g. "FP32".
    datatype: str
    # -1 marks a dynamic dimension.
    shape: tuple[int, ...]


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: tuple[int, int]
    memory_bytes: int = 0
    uuid: str = ""
    driver_version: str = ""


class LoadedModel(Protocol):
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def infer(self, inputs: Mapping[str, Array]) -> dict[str, Array]: ...

    def close(self) -> None: ...


class Backend(Protocol):
    name: str
    # "onnxruntime" when it serves CPU-only agents, "tensorrt"/"tensorrt-rtx" for GPU engines.
    platform: str

    def version(self) -> str: ...

    def check_fit(self, path: Path, *, gpus: Sequence[GpuInfo]) -> None:
        """Raise EngineDoesNotFit (or BackendUnavailable) with the reason, before loading."""

    def load(self, path: Path) -> LoadedModel: ...


# Backend name -> "module:factory"; the module imports its runtime only when used.
REGISTRY: Mapping[str, str] = {
    "onnxruntime": "edgewave_agent.backends.ort:OnnxRuntimeBackend",
    "tensorrt": "edgewave_agent.backends.trt:TensorRtBackend",
    "tensorrt-rtx": "edgewave_agent.backends.trt:TensorRtRtxBackend",
}


def installed(*, threads: int = 0) -> dict[str, Backend]:
    """The backends whose runtime imports on this agent."""
    found: dict[str, Backend] = {}
    for name, spec in REGISTRY.items():
        module_name, factory_name = spec.split(":")
        module = importlib.import_module(module_name)
        try:
            found[name] = getattr(module, factory_name)(threads=threads)
        except errors.BackendUnavailable:
            continue
    return found


def _squash(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def require(backends: Mapping[str, Backend], name: str) -> Backend:
    """The backend called `name`, also in the API's spelling ("TensorRTRTX", "ONNXRuntime")."""
    wanted = _squash(name)
    for backend_name, backend in backends.items():
        if _squash(backend_name) == wanted:
            return backend
    have = ", ".join(sorted(backends)) or "none"
    raise errors.BackendUnavailable(
        f"backend {name!r} is not installed on this agent (it has: {have}): build the"
        " engine for a backend this agent reports in Describe"
    )
