"""Tiny ONNX models generated with onnx.helper, for examples, benchmarks and tests.

They exercise the paths that matter to the compiler (dynamic batch, a Q/DQ model for INT8,
single operators a backend may not support) without shipping model files.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def matmul_relu(*, batch: int | str = "N", seed: int = 0) -> onnx.ModelProto:
    """y = relu(x @ W + b) with x of shape [batch, 8]; a symbolic batch is dynamic."""
    rng = np.random.default_rng(seed)
    weights = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"], name="matmul"),
            helper.make_node("Add", ["xw", "b"], ["z"], name="bias"),
            helper.make_node("Relu", ["z"], ["y"], name="relu"),
        ],
        "matmul_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])],
        [weights, bias],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def single_op(op_type: str, *, domain: str = "", node: str = "odd_node") -> onnx.ModelProto:
    """One node `op_type(x) -> y` over a float vector (for unsupported-operator tests)."""
    graph = helper.make_graph(
        [helper.make_node(op_type, ["x"], ["y"], name=node, domain=domain)],
        "single",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    opsets = [helper.make_opsetid("", OPSET)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    return helper.make_model(graph, opset_imports=opsets)


def quantized_matmul() -> onnx.ModelProto:
    """A Q/DQ (pre-quantized) y = DQ(Q(x)) @ DQ(W_int8), static shape [2, 8]."""
    rng = np.random.default_rng(1)
    w_int8 = rng.integers(-127, 127, size=(8, 4), dtype=np.int8)
    initializers = [
        numpy_helper.from_array(w_int8, "W_q"),
        numpy_helper.from_array(np.array(0.02, dtype=np.float32), "w_scale"),
        numpy_helper.from_array(np.array(0.05, dtype=np.float32), "x_scale"),
        numpy_helper.from_array(np.array(0, dtype=np.int8), "zero"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "x_scale", "zero"], ["x_q"], name="q_x"),
            helper.make_node("DequantizeLinear", ["x_q", "x_scale", "zero"], ["x_dq"], name="dq_x"),
            helper.make_node("DequantizeLinear", ["W_q", "w_scale", "zero"], ["W_dq"], name="dq_w"),
            helper.make_node("MatMul", ["x_dq", "W_dq"], ["y"], name="matmul"),
        ],
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
