"""ONNX Runtime backend: runs ONNX (or ORT-optimized ONNX) models on the CPU.

The backend of CPU-only agents and of tests: real inference, same interface as the GPU
backends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgewave_agent import errors
from edgewave_agent.backends import Array, GpuInfo, TensorSpec

# ONNX Runtime type strings -> KServe v2 datatypes.
_DATATYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def _spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
    return TensorSpec(name=arg.name, datatype=_DATATYPES.get(arg.type, arg.type), shape=shape)


class OnnxRuntimeModel:
    def __init__(self, session: Any) -> None:
        self._session = session
        self.inputs = tuple(_spec(a) for a in session.get_inputs())
        self.outputs = tuple(_spec(a) for a in session.get_outputs())

    def infer(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        expected = {spec.name for spec in self.inputs}
        if set(inputs) != expected:
            raise errors.InvalidRequest(
                f"inputs {sorted(inputs)} do not match the model's {sorted(expected)}"
            )
        names = [spec.name for spec in self.outputs]
        try:
            results = self._session.run(names, dict(inputs))
        except Exception as error:
            # onnxruntime raises its own exception types for bad shapes and dtypes.
            raise errors.InvalidRequest(f"onnxruntime refused the inputs: {error}") from None
        return {name: np.asarray(value) for name, value in zip(names, results, strict=True)}

    def close(self) -> None:
        self._session = None


class OnnxRuntimeBackend:
    name = "onnxruntime"
    platform = "onnxruntime_onnx"

    def __init__(self, *, threads: int = 0) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise errors.BackendUnavailable("onnxruntime is not installed") from None
        self._ort = onnxruntime
        self._threads = threads

    def version(self) -> str:
        return str(self._ort.__version__)

    def check_fit(self, path: Path, *, gpus: Sequence[GpuInfo]) -> None:
        # ONNX models run on any CPU; load() reports an unsupported opset precisely.
        del path, gpus

    def load(self, path: Path) -> OnnxRuntimeModel:
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = self._ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:
            raise errors.LoadFailed(
                f"onnxruntime {self.version()} cannot load the artifact: {error}"
            ) from None
        return OnnxRuntimeModel(session)
