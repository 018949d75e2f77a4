"""KServe v2 tensors <-> numpy arrays: datatypes, raw little-endian contents, typed contents.

Inputs may arrive as `raw_input_contents` (what tritonclient sends) or as typed `contents`;
outputs are always returned as `raw_output_contents`, as Triton does.

Every input is hostile: a declared shape is checked (no negative dimension, at most
`max_elements` elements over all inputs, counted in Python integers, so `[2**40, 2**40]`
cannot wrap) and compared with the bytes or values actually sent before anything is
allocated; raw inputs are then viewed in place, not copied. Blocking and CPU-bound: the
servicer calls these from its worker threads, never on the event loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edgewave_agent import errors
from edgewave_proto.kserve.v2 import grpc_predict_v2_pb2 as kserve

Array = npt.NDArray[np.generic]

DATATYPES: Mapping[str, np.dtype[np.generic]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_BY_DTYPE = {dtype: name for name, dtype in DATATYPES.items()}

# Which typed `contents` field holds each datatype.
_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


def datatype_of(dtype: np.dtype[np.generic]) -> str:
    try:
        return _BY_DTYPE[np.dtype(dtype).newbyteorder("=")]
    except KeyError:
        raise errors.InvalidRequest(f"numpy dtype {dtype} has no KServe v2 datatype") from None


def dtype_of(datatype: str) -> np.dtype[np.generic]:
    try:
        return DATATYPES[datatype]
    except KeyError:
        supported = ", ".join(DATATYPES)
        raise errors.InvalidRequest(
            f"datatype {datatype!r} is not supported here; use one of {supported}"
        ) from None


def element_count(name: str, shape: Sequence[int], *, limit: int, used: int = 0) -> int:
    """Elements of input `name` of `shape`, refused when a dimension is negative or the
    count takes the request (`used` elements before it) over `limit`. Pure and exact: Python
    integers, and it stops multiplying once over the limit."""
    negative = [d for d in shape if d < 0]
    if negative:
        raise errors.InvalidRequest(
            f"input {name}: negative dimension {negative[0]} in shape {list(shape)}"
        )
    count = 1
    for dimension in shape:
        count *= dimension
        if used + count > limit:
            over = "takes the request's inputs over" if used else "has more than"
            raise errors.InvalidRequest(
                f"input {name}: shape {list(shape)} {over} {limit} elements"
                " (inference.max_elements)"
            )
    return count


def decode_inputs(
    request: kserve.ModelInferRequest,
    *,
    max_elements: int,
    raw: Sequence[bytes | memoryview] | None = None,
) -> dict[str, Array]:
    """The request's input tensors, after every check; `max_elements` bounds all together.

    `raw` are the raw contents when read off the wire apart from the request (`inferwire`);
    else the request's own. Raw inputs become views of those bytes, not copies.
    """
    if raw is None:
        raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise errors.InvalidRequest(
            f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs: send one per input"
        )
    arrays: dict[str, Array] = {}
    used = 0
    for index, tensor in enumerate(request.inputs):
        if tensor.name in arrays:
            raise errors.InvalidRequest(f"input {tensor.name} is sent twice")
        dtype = dtype_of(tensor.datatype)
        shape = tuple(int(d) for d in tensor.shape)
        count = element_count(tensor.name, shape, limit=max_elements, used=used)
        used += count
        if raw:
            data = raw[index]
            size = memoryview(data).nbytes
            if size != count * dtype.itemsize:
                raise errors.InvalidRequest(
                    f"input {tensor.name}: {size} raw bytes for shape {list(shape)} of"
                    f" {tensor.datatype} (expected {count * dtype.itemsize})"
                )
            array: Array = np.frombuffer(data, dtype=dtype.newbyteorder("<")).reshape(shape)
        else:
            field = _CONTENTS_FIELD.get(tensor.datatype)
            if field is None:
                raise errors.InvalidRequest(
                    f"input {tensor.name}: {tensor.datatype} must be sent as raw_input_contents"
                )
            values = getattr(tensor.contents, field)
            if len(values) != count:
                raise errors.InvalidRequest(
                    f"input {tensor.name}: {len(values)} values for shape {list(shape)}"
                )
            array = _from_values(values, dtype=dtype, count=count).reshape(shape)
        arrays[tensor.name] = array
    return arrays


# Typed values are copied this many at a time: each slice is one C loop that holds the GIL,
# and between slices the event loop's thread gets it (one np.fromiter over 15 million
# values held it for over a second).
_SLICE = 1 << 16


def _from_values(values: Sequence[Any], *, dtype: np.dtype[np.generic], count: int) -> Array:
    array: Array = np.empty(count, dtype=dtype)
    for start in range(0, count, _SLICE):
        array[start : start + _SLICE] = values[start : start + _SLICE]
    return array


def encode_outputs(
    response: kserve.ModelInferResponse,
    outputs: Mapping[str, Array],
    *,
    wanted: Sequence[str],
    max_bytes: int,
) -> list[memoryview]:
    """Describe the wanted outputs (all when none is named) in `response` and return their
    little-endian bytes, in order, for `raw_output_contents`; refused over `max_bytes` in
    all before any is copied. An output already little-endian and contiguous is not copied."""
    names = list(wanted) if wanted else list(outputs)
    for name in names:
        if name not in outputs:
            raise errors.InvalidRequest(
                f"output {name!r} does not exist; ModelMetadata lists: {', '.join(outputs)}"
            )
    size = sum(outputs[name].nbytes for name in names)
    if size > max_bytes:
        raise errors.SizeExceeded(
            f"outputs {', '.join(names)} are {size} bytes, over the {max_bytes} this agent"
            " answers (inference.max_response_bytes); ask for fewer outputs or a smaller batch"
        )
    raw: list[memoryview] = []
    for name in names:
        array = outputs[name]
        tensor = response.outputs.add()
        tensor.name = name
        tensor.datatype = datatype_of(array.dtype)
        tensor.shape.extend(array.shape)
        little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        raw.append(little.reshape(-1).view(np.uint8).data)
    return raw
