"""Reduced precision for strongly typed builders: the ONNX graph itself carries the types.

TensorRT-RTX (and TensorRT in strongly typed mode) builds each tensor in the type the ONNX
graph gives it; there is no "enable FP16" switch. So FP16 and BF16 mean converting the
graph before the build. The conversion is ONNX Runtime's maintained fork of
onnxconverter-common's float16 converter (`onnxruntime.transformers.float16`); graph inputs
and outputs stay FP32 so clients send and receive the same tensors whatever the precision.
BF16 reuses that conversion and re-types FLOAT16 to BFLOAT16, re-encoding each converted
weight from its FP32 original (BF16 keeps FP32's range, so no clamping to 65504).

INT8 is never calibrated here: a strongly typed network takes its INT8 scales from
QuantizeLinear/DequantizeLinear nodes, so only pre-quantized (Q/DQ) models are accepted.
"""

from __future__ import annotations

import ml_dtypes
import onnx
import onnx.numpy_helper

from edgewave_compiler import errors, keys


def to_float16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Convert in place (and return) with FP32 graph inputs and outputs kept."""
    # onnxruntime.transformers appends its own folder to sys.path on import; this only runs
    # inside build workers, which are short-lived processes.
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    converted: onnx.ModelProto = convert_float_to_float16(model, keep_io_types=True)
    # The converter appends its input casts at the end of the node list.
    OnnxModel.graph_topological_sort(converted.graph, is_deterministic=True)
    return converted


def to_bfloat16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Convert in place (and return): the FP16 conversion, re-typed to BF16 from FP32 values."""
    float32 = onnx.TensorProto.FLOAT
    originals = {
        init.name: onnx.numpy_helper.to_array(init)
        for init in model.graph.initializer
        if init.data_type == float32
    }
    converted = to_float16(model)
    fp16, bf16 = onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16
    for init in converted.graph.initializer:
        if init.data_type == fp16:
            values = originals.get(init.name)
            if values is None:
                values = onnx.numpy_helper.to_array(init).astype("float32")
            init.CopyFrom(
                onnx.numpy_helper.from_array(values.astype(ml_dtypes.bfloat16), init.name)
            )
    for node in converted.graph.node:
        for attribute in node.attribute:
            if node.op_type == "Cast" and attribute.name == "to" and attribute.i == fp16:
                attribute.i = bf16
            if attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == fp16:
                values = onnx.numpy_helper.to_array(attribute.t).astype("float32")
                attribute.t.CopyFrom(
                    onnx.numpy_helper.from_array(
                        values.astype(ml_dtypes.bfloat16), attribute.t.name
                    )
                )
    graph = converted.graph
    for value in (*graph.value_info, *graph.input, *graph.output):
        if value.type.tensor_type.elem_type == fp16:
            value.type.tensor_type.elem_type = bf16
    return converted


def _is_quantized(model: onnx.ModelProto) -> bool:
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def prepare(
    model: onnx.ModelProto, *, precision: keys.Precision, backend: keys.Backend
) -> onnx.ModelProto:
    """The graph a strongly typed build of `precision` needs (the input is not modified)."""
    if precision is keys.Precision.INT8:
        if not _is_quantized(model):
            raise errors.UnsupportedPrecision(
                f"INT8 with {backend.value} needs a pre-quantized model with QuantizeLinear/"
                "DequantizeLinear (Q/DQ) nodes, and this model has none: quantize it first"
                " (onnxruntime.quantization.quantize_static with QuantFormat.QDQ, or NVIDIA"
                " Model Optimizer) or choose precision FP16"
            )
        return model
    if precision is keys.Precision.FP32 or backend is keys.Backend.ONNXRUNTIME:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    if precision is keys.Precision.FP16:
        return to_float16(copy)
    return to_bfloat16(copy)
