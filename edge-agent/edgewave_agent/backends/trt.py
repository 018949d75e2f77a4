"""TensorRT and TensorRT-RTX backends: serialized engines on NVIDIA GPUs.

Both share one implementation (the TensorRT 10 tensor API); they differ in the Python
module and in the fit check. TensorRT-RTX answers `getEngineValidity` for a serialized
engine, so a mismatch is refused with its diagnostics before any GPU memory is touched;
for TensorRT the engine's compatibility is checked by deserializing it, which fails with
the runtime's reason when the compute capability or TensorRT version differ. Device memory
is managed through the CUDA runtime library (ctypes), which both wheels already need.

Every request is checked before device memory is touched (`shapes`: dtype, rank, static
dimensions, the optimization profile), `set_input_shape` must succeed and resolve exactly
the shape sent, and buffers are sized from the shapes the execution context resolved.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edgewave_agent import errors
from edgewave_agent.backends import Array, GpuInfo, TensorSpec, shapes

_HOST_TO_DEVICE = 1
_DEVICE_TO_HOST = 2
_DATATYPES = {
    "FLOAT": ("FP32", np.float32),
    "HALF": ("FP16", np.float16),
    "INT8": ("INT8", np.int8),
    "INT32": ("INT32", np.int32),
    "INT64": ("INT64", np.int64),
    "BOOL": ("BOOL", np.bool_),
    "UINT8": ("UINT8", np.uint8),
}
_DIAGNOSTICS = {
    "VERSION_MISMATCH": "built with another runtime version",
    "UNSUPPORTED_CC": "built for another compute capability",
    "OLD_CUDA_DRIVER": "the CUDA driver is too old",
    "OLD_CUDA_RUNTIME": "the CUDA runtime is too old",
    "INSUFFICIENT_GPU_MEMORY": "not enough GPU memory",
    "MALFORMED_ENGINE": "the engine file is malformed",
    "CUDA_ERROR": "CUDA reported an error",
}


def _capturing_logger(trt: ModuleType) -> Any:
    """A TensorRT logger that keeps the runtime's messages, to explain a refusal."""

    class Capturing(trt.ILogger):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[str] = []

        def log(self, severity: Any, message: str) -> None:
            if int(severity) <= int(trt.ILogger.Severity.INFO):
                self.messages.append(message)

        def explain(self) -> str:
            return " ".join(self.messages[-3:])

    return Capturing()


class _Cuda:
    """The few CUDA runtime calls inference needs."""

    def __init__(self) -> None:
        candidates = [ctypes.util.find_library("cudart"), "libcudart.so.13", "libcudart.so.12"]
        for name in filter(None, candidates):
            try:
                self._lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        else:
            raise errors.BackendUnavailable(
                "the CUDA runtime (libcudart) is not installed: install the NVIDIA CUDA runtime"
            )

    def _check(self, code: int, what: str) -> None:
        if code != 0:
            raise errors.InferenceFailed(f"CUDA {what} failed with error {code}")

    def malloc(self, size: int) -> int:
        pointer = ctypes.c_void_p()
        self._check(self._lib.cudaMalloc(ctypes.byref(pointer), ctypes.c_size_t(size)), "malloc")
        return int(pointer.value or 0)

    def free(self, pointer: int) -> None:
        self._lib.cudaFree(ctypes.c_void_p(pointer))

    def copy(self, *, dst: int, src: int, size: int, kind: int) -> None:
        code = self._lib.cudaMemcpy(
            ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(size), kind
        )
        self._check(code, "memcpy")

    def synchronize(self) -> None:
        self._check(self._lib.cudaDeviceSynchronize(), "synchronize")


class TensorRtModel:
    def __init__(self, *, trt: ModuleType, runtime: Any, engine: Any, cuda: _Cuda) -> None:
        self._trt = trt
        self._runtime = runtime  # must outlive the engine
        self._engine = engine
        self._context = engine.create_execution_context()
        self._cuda = cuda
        self._lock = threading.Lock()
        inputs: list[TensorSpec] = []
        outputs: list[TensorSpec] = []
        self._dtypes: dict[str, np.dtype[Any]] = {}
        self._checks: dict[str, shapes.InputSpec] = {}
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            datatype, dtype = _DATATYPES[engine.get_tensor_dtype(name).name]
            self._dtypes[name] = np.dtype(dtype)
            shape = tuple(int(d) for d in engine.get_tensor_shape(name))
            spec = TensorSpec(name, datatype, shape)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (inputs if is_input else outputs).append(spec)
            if is_input:
                self._checks[name] = _input_spec(
                    engine, name=name, dtype=np.dtype(dtype), shape=shape
                )
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)

    def infer(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        expected = {spec.name for spec in self.inputs}
        if set(inputs) != expected:
            raise errors.InvalidRequest(
                f"inputs {sorted(inputs)} do not match the engine's {sorted(expected)}"
            )
        arrays: dict[str, Array] = {}
        for spec in self.inputs:
            given = np.asarray(inputs[spec.name])
            shapes.check_input(self._checks[spec.name], dtype=given.dtype, shape=given.shape)
            arrays[spec.name] = np.ascontiguousarray(given)
        with self._lock:
            allocations: list[int] = []
            try:
                for spec in self.inputs:
                    array = arrays[spec.name]
                    if not self._context.set_input_shape(spec.name, array.shape):
                        raise errors.InvalidRequest(
                            f"the engine refused input {spec.name!r} with shape"
                            f" {list(array.shape)}: send a shape within its profile"
                        )
                    shapes.check_resolved(
                        spec.name,
                        sent=array.shape,
                        resolved=self._context.get_tensor_shape(spec.name),
                    )
                    size = shapes.buffer_bytes(
                        spec.name, shape=array.shape, itemsize=array.dtype.itemsize
                    )
                    if size != array.nbytes:  # cannot differ after the checks; never copy past
                        raise errors.InvalidRequest(f"input {spec.name!r} has the wrong size")
                    pointer = self._cuda.malloc(max(size, 1))
                    allocations.append(pointer)
                    self._cuda.copy(
                        dst=pointer, src=array.ctypes.data, size=size, kind=_HOST_TO_DEVICE
                    )
                    self._context.set_tensor_address(spec.name, pointer)
                results: dict[str, Array] = {}
                pending: list[tuple[str, int, Array]] = []
                for spec in self.outputs:
                    shape = tuple(int(d) for d in self._context.get_tensor_shape(spec.name))
                    dtype = self._dtypes[spec.name]
                    size = shapes.buffer_bytes(spec.name, shape=shape, itemsize=dtype.itemsize)
                    host = np.empty(shape, dtype=dtype)
                    pointer = self._cuda.malloc(max(size, 1))
                    allocations.append(pointer)
                    self._context.set_tensor_address(spec.name, pointer)
                    pending.append((spec.name, pointer, host))
                if not self._context.execute_async_v3(0):
                    raise errors.InferenceFailed("TensorRT execution failed; see the agent log")
                self._cuda.synchronize()
                for name, pointer, host in pending:
                    self._cuda.copy(
                        dst=host.ctypes.data, src=pointer, size=host.nbytes, kind=_DEVICE_TO_HOST
                    )
                    results[name] = host
                return results
            finally:
                for pointer in allocations:
                    self._cuda.free(pointer)

    def close(self) -> None:
        self._context = None
        self._engine = None
        self._runtime = None


def _input_spec(
    engine: Any, *, name: str, dtype: np.dtype[Any], shape: tuple[int, ...]
) -> shapes.InputSpec:
    """The shape rules of one input: its engine shape and profile 0's min and max."""
    if all(d >= 0 for d in shape) or engine.num_optimization_profiles < 1:
        return shapes.InputSpec(name=name, dtype=dtype, shape=shape)
    low, _, high = engine.get_tensor_profile_shape(name, 0)
    return shapes.InputSpec(
        name=name,
        dtype=dtype,
        shape=shape,
        min_shape=tuple(int(d) for d in low),
        max_shape=tuple(int(d) for d in high),
    )


class _TensorRtFamily:
    name: str
    platform: str
    module_name: str

    def __init__(self, *, threads: int = 0) -> None:
        del threads
        try:
            self._trt: ModuleType = importlib.import_module(self.module_name)
        except ImportError:
            raise errors.BackendUnavailable(f"{self.module_name} is not installed") from None

    def version(self) -> str:
        return str(self._trt.__version__)

    def _require_gpu(self, gpus: Sequence[GpuInfo]) -> None:
        if not gpus:
            raise errors.EngineDoesNotFit(
                f"{self.name} engines need an NVIDIA GPU and this agent reports none: roll"
                " out an onnxruntime artifact to CPU-only agents"
            )

    def check_fit(self, path: Path, *, gpus: Sequence[GpuInfo]) -> None:
        self._require_gpu(gpus)
        self._deserialize(path)

    def _deserialize(self, path: Path) -> tuple[Any, Any]:
        """(runtime, engine); the runtime must be kept as long as the engine."""
        logger = _capturing_logger(self._trt)
        runtime = self._trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise errors.EngineDoesNotFit(
                f"{self.name} {self.version()} cannot deserialize the engine"
                f" ({logger.explain() or 'no reason given'}): it was"
                " built for another GPU or runtime version; rebuild it for this agent's GPU"
                " and runtime as Describe reports them"
            )
        return runtime, engine

    def load(self, path: Path) -> TensorRtModel:
        runtime, engine = self._deserialize(path)
        return TensorRtModel(trt=self._trt, runtime=runtime, engine=engine, cuda=_Cuda())


class TensorRtBackend(_TensorRtFamily):
    name = "tensorrt"
    platform = "tensorrt_plan"
    module_name = "tensorrt"


class TensorRtRtxBackend(_TensorRtFamily):
    name = "tensorrt-rtx"
    platform = "tensorrt_plan"
    module_name = "tensorrt_rtx"

    def check_fit(self, path: Path, *, gpus: Sequence[GpuInfo]) -> None:
        self._require_gpu(gpus)
        logger = _capturing_logger(self._trt)
        runtime = self._trt.Runtime(logger)
        validity, diagnostics = runtime.get_engine_validity(path.read_bytes())
        if validity == self._trt.EngineValidity.INVALID:
            reasons = describe_diagnostics(self._trt, int(diagnostics))
            if logger.messages:
                reasons += f"; runtime says: {logger.explain()}"
            raise errors.EngineDoesNotFit(
                f"tensorrt-rtx {self.version()} says the engine cannot run on this agent"
                f" ({reasons}): rebuild it for the GPUs and runtime Describe reports"
            )


def describe_diagnostics(trt: ModuleType, diagnostics: int) -> str:
    """Words for TensorRT-RTX's EngineInvalidityDiagnostics bit mask."""
    flags = trt.EngineInvalidityDiagnostics
    words = [text for name, text in _DIAGNOSTICS.items() if diagnostics & int(getattr(flags, name))]
    return "; ".join(words) or "no GPU could be queried"
