"""Engine backends behind one interface: TensorRT-RTX, TensorRT and ONNX Runtime.

Each backend module imports its toolchain only when used, so the operator and the agent
load just what they need and a missing toolchain is a typed `BackendUnavailable` that
names the package to install. `central_builders()` tells the planner what this host can
build without an agent's help.
"""

from __future__ import annotations

import importlib
import types
from pathlib import Path
from typing import Protocol

import onnx

from edgewave_compiler import errors, intake, keys, planning

MAX_LOG_LINES = 4000


class BuildLog:
    """Lines a build produced (toolchain logger and our own notes), kept for the metadata."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, line: str) -> None:
        if len(self.lines) < MAX_LOG_LINES:
            self.lines.append(line.rstrip())
        elif len(self.lines) == MAX_LOG_LINES:
            self.lines.append("... (log truncated)")

    def text(self) -> str:
        return "\n".join(self.lines)


class EngineBuilder(Protocol):
    """One backend's builder. `build` writes the engine to `out_path` or raises a typed error."""

    backend: keys.Backend
    artifact_suffix: str

    @property
    def version(self) -> str: ...

    def central(self) -> planning.CentralBuilder | None:
        """What this host can build for agents, or None when it cannot build here at all."""
        ...

    def build(
        self,
        *,
        model: onnx.ModelProto,
        info: intake.ModelInfo,
        key: keys.BuildKey,
        out_path: Path,
        log: BuildLog,
    ) -> None: ...


def import_toolchain(module_name: str, *, package: str) -> types.ModuleType:
    """Import a backend's toolchain, or say which package to install."""
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise errors.BackendUnavailable(
            f"the {module_name} Python module is not installed here ({error}): install"
            f" `{package}` where this build runs, or allow another backend"
        ) from None


_MODULES = {
    keys.Backend.TENSORRT_RTX: "edgewave_compiler.backends.trt_rtx",
    keys.Backend.TENSORRT: "edgewave_compiler.backends.trt",
    keys.Backend.ONNXRUNTIME: "edgewave_compiler.backends.ort",
}


def load(backend: keys.Backend) -> EngineBuilder:
    """The builder for `backend`; raises `BackendUnavailable` when its toolchain is missing."""
    module = importlib.import_module(_MODULES[backend])
    builder: EngineBuilder = module.create()
    return builder


def installed(backend: keys.Backend) -> EngineBuilder | None:
    try:
        return load(backend)
    except errors.BackendUnavailable:
        return None


def central_builders() -> tuple[planning.CentralBuilder, ...]:
    """Every builder this host offers the planner, in backend order."""
    found: list[planning.CentralBuilder] = []
    for backend in keys.Backend:
        builder = installed(backend)
        central = None if builder is None else builder.central()
        if central is not None:
            found.append(central)
    return tuple(found)
