"""ONNX Runtime for CPU-only agents: a graph-optimized model for one ONNX Runtime version.

ONNX Runtime applies its extended graph optimizations (constant folding, fusions into its
contrib operators) and saves the result as ONNX, so an agent loads a model that needs no
optimization at start-up. The result is specific to the ONNX Runtime minor version and the
CPU execution provider, which the build key records.
"""

from __future__ import annotations

import re
import types
from pathlib import Path

import onnx

from edgewave_compiler import backends, errors, intake, keys, planning

MODULE = "onnxruntime"
PACKAGE = "onnxruntime"

_NOT_REGISTERED = re.compile(r"(?:([\w.]+):)?(\w+)\(-?\d+\) is not a registered function/op")
_NO_KERNEL = re.compile(
    r"Could not find an implementation for (\w+)\(\d+\) node with name '([^']*)'"
)


class OnnxRuntimeBuilder:
    backend = keys.Backend.ONNXRUNTIME
    artifact_suffix = ".onnx"

    def __init__(self, ort: types.ModuleType) -> None:
        self.ort = ort

    @property
    def version(self) -> str:
        return str(self.ort.__version__)

    def central(self) -> planning.CentralBuilder:
        return planning.CentralBuilder(backend=self.backend, version=self.version)

    def _unsupported(self, message: str, model: onnx.ModelProto) -> errors.EdgewaveError | None:
        backend = f"ONNX Runtime {self.version}"
        match = _NO_KERNEL.search(message)
        if match:
            return errors.UnsupportedOperator(
                backend=backend, node=match.group(2), op_type=match.group(1), detail="no CPU kernel"
            )
        match = _NOT_REGISTERED.search(message)
        if match:
            domain, op_type = match.group(1) or "", match.group(2)
            for index, node in enumerate(model.graph.node):
                node_domain = "" if node.domain in ("", "ai.onnx") else node.domain
                if node.op_type == op_type and node_domain == domain:
                    return errors.UnsupportedOperator(
                        backend=backend,
                        node=node.name or f"#{index}",
                        op_type=f"{domain}:{op_type}" if domain else op_type,
                        detail="not a registered operator",
                    )
        return None

    def build(
        self,
        *,
        model: onnx.ModelProto,
        info: intake.ModelInfo,
        key: keys.BuildKey,
        out_path: Path,
        log: backends.BuildLog,
    ) -> None:
        ort = self.ort
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(out_path)
        options.log_severity_level = 3
        log.write(f"optimizing {key.describe()} (extended graph optimizations, CPU provider)")
        try:
            ort.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # ONNX Runtime raises its own pybind exception types
            message = str(error)
            log.write(f"[ERROR] {message}")
            typed = self._unsupported(message, model)
            if typed is not None:
                raise typed from None
            raise errors.BuildFailed(
                f"ONNX Runtime {self.version} could not load the model: {message.splitlines()[0]}."
                " Check the model with onnxruntime directly, then re-export it"
            ) from None
        if not out_path.exists():
            raise errors.BuildFailed(
                f"ONNX Runtime {self.version} wrote no optimized model to {out_path}"
            )


def create() -> OnnxRuntimeBuilder:
    return OnnxRuntimeBuilder(backends.import_toolchain(MODULE, package=PACKAGE))
