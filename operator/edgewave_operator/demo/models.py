"""The demo's models: tiny image classifiers made with onnx.helper (no files to download).

`classifier` averages each colour channel of an image, then runs a two-layer MLP over the
three means and returns the probabilities of four classes. Its input is
`input: FLOAT[N, 3, H, W]` with batch and size dynamic, so the three-wave rollout's shape
profile (`input`, 1x3x224x224 to 32x3x224x224) builds real TensorRT-RTX engines, while
requests stay small (a 1x3x16x16 image). The EU-only rollout declares no shape profile,
so its model has a fixed shape. Versions differ only in their weights (the seed).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18
IR_VERSION = 9
CLASSES = 4
HIDDEN = 16
INPUT = "input"
OUTPUT = "probabilities"
DYNAMIC_SHAPE: tuple[int | str, ...] = ("N", 3, "H", "W")
FIXED_SHAPE = (1, 3, 32, 32)
REQUEST_SHAPE = (1, 3, 16, 16)
"""What the demo sends to the dynamic-shape classifier."""


@dataclass(frozen=True)
class ModelFile:
    """A generated model on disk, with what a ModelRollout needs to name it."""

    name: str
    version: str
    path: Path
    sha256: str
    request_shape: tuple[int, ...]

    @property
    def uri(self) -> str:
        return self.path.resolve().as_uri()


def classifier(*, seed: int, shape: tuple[int | str, ...] = DYNAMIC_SHAPE) -> onnx.ModelProto:
    """mean over H and W -> Gemm(3->16) -> ReLU -> Gemm(16->4) -> Softmax."""
    rng = np.random.default_rng(seed)
    initializers = [
        numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "spatial_axes"),
        numpy_helper.from_array(rng.standard_normal((3, HIDDEN)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal(HIDDEN).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.standard_normal((HIDDEN, CLASSES)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.standard_normal(CLASSES).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("ReduceMean", [INPUT, "spatial_axes"], ["means"], keepdims=0),
        helper.make_node("MatMul", ["means", "w1"], ["hidden_raw"]),
        helper.make_node("Add", ["hidden_raw", "b1"], ["hidden_biased"]),
        helper.make_node("Relu", ["hidden_biased"], ["hidden"]),
        helper.make_node("MatMul", ["hidden", "w2"], ["logits_raw"]),
        helper.make_node("Add", ["logits_raw", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [OUTPUT], axis=1),
    ]
    batch = shape[0]
    graph = helper.make_graph(
        nodes,
        "edgewave_demo_classifier",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [batch, CLASSES])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def write(
    model: onnx.ModelProto,
    *,
    directory: Path,
    name: str,
    version: str,
    request_shape: tuple[int, ...],
) -> ModelFile:
    """Save `model` as `directory/<name>-<version>.onnx` and describe it."""
    directory.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString()
    path = directory / f"{name}-{version}.onnx"
    path.write_bytes(data)
    return ModelFile(
        name=name,
        version=version,
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        request_shape=request_shape,
    )
