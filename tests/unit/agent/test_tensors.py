"""KServe v2 tensors <-> numpy, raw and typed contents, and the limits on what is decoded."""

from __future__ import annotations

import numpy as np
import pytest

from edgewave_agent import errors, tensors
from edgewave_proto.kserve.v2 import grpc_predict_v2_pb2 as kserve

LIMIT = 1 << 20


def _request(**tensor: object) -> kserve.ModelInferRequest:
    request = kserve.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype="FP32", shape=[2, 2])
    return request


def test_raw_inputs_and_outputs() -> None:
    request = _request()
    array = np.arange(4, dtype=np.float32).reshape(2, 2)
    request.raw_input_contents.append(array.tobytes())
    decoded = tensors.decode_inputs(request, max_elements=LIMIT)
    np.testing.assert_array_equal(decoded["x"], array)
    response = kserve.ModelInferResponse()
    (raw,) = tensors.encode_outputs(
        response, {"y": array.astype(np.int64), "z": array}, wanted=["y"], max_bytes=LIMIT
    )
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("y", "INT64", [2, 2])
    ]
    assert np.frombuffer(raw, dtype=np.int64).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype=">f4").reshape(2, 3),  # big-endian: swapped to little
        np.arange(6, dtype=np.float16).reshape(2, 3).T,  # not contiguous
        np.array([True, False, True]),
        np.array(3.5, dtype=np.float64),  # 0-d
        np.zeros((0, 4), dtype=np.int8),
    ],
)
def test_outputs_are_little_endian_bytes(array: np.ndarray) -> None:
    response = kserve.ModelInferResponse()
    (raw,) = tensors.encode_outputs(response, {"y": array}, wanted=[], max_bytes=LIMIT)
    assert bytes(raw) == array.astype(array.dtype.newbyteorder("<")).tobytes()
    assert list(response.outputs[0].shape) == list(array.shape)


def test_typed_contents() -> None:
    request = _request()
    request.inputs[0].contents.fp32_contents.extend([1, 2, 3, 4])
    np.testing.assert_array_equal(
        tensors.decode_inputs(request, max_elements=LIMIT)["x"], [[1, 2], [3, 4]]
    )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.raw_input_contents.append(b"\0" * 15), "15 raw bytes"),
        (lambda r: r.inputs[0].contents.fp32_contents.extend([1.0]), "1 values"),
        (lambda r: setattr(r.inputs[0], "datatype", "BF17"), "not supported"),
        (lambda r: r.raw_input_contents.extend([b"", b""]), "2 raw_input_contents for 1"),
    ],
)
def test_malformed_inputs(mutate: object, message: str) -> None:
    request = _request()
    mutate(request)  # type: ignore[operator]
    with pytest.raises(errors.InvalidRequest, match=message):
        tensors.decode_inputs(request, max_elements=LIMIT)


def test_unknown_output_is_named() -> None:
    with pytest.raises(errors.InvalidRequest, match="'q' does not exist"):
        tensors.encode_outputs(
            kserve.ModelInferResponse(), {"y": np.zeros(1)}, wanted=["q"], max_bytes=LIMIT
        )


# Shapes whose int64 product wraps: 2**64 + 2 (wraps to 2), 2**64 (to 0), 2**80.
WRAPPING = [[3, 6148914691236517206], [2**32, 2**32], [2**62, 4], [2**40, 2**40]]


@pytest.mark.parametrize(
    ("shape", "limit", "used", "message"),
    [
        *[(shape, LIMIT, 0, "has more than 1048576 elements") for shape in WRAPPING],
        ([2**63 - 1, 0], LIMIT, 0, "has more than"),  # refused before the 0 is reached
        ([-1, 4], LIMIT, 0, r"negative dimension -1 in shape \[-1, 4\]"),
        ([4, -(2**63)], LIMIT, 0, "negative dimension"),
        ([0, -1], LIMIT, 0, "negative dimension"),
        ([5], 4, 0, r"shape \[5\] has more than 4 elements \(inference.max_elements\)"),
        ([3], 4, 2, "takes the request's inputs over 4 elements"),
    ],
)
def test_element_count_refuses(shape: list[int], limit: int, used: int, message: str) -> None:
    with pytest.raises(errors.InvalidRequest, match=message):
        tensors.element_count("x", shape, limit=limit, used=used)


@pytest.mark.parametrize(
    ("shape", "limit", "used", "count"),
    [
        ([], 1, 0, 1),
        ([0, 2**62], 1, 0, 0),
        ([2, 3], 6, 0, 6),
        ([4], 6, 2, 4),
        ([2**20], 2**20, 0, 2**20),
    ],
)
def test_element_count(shape: list[int], limit: int, used: int, count: int) -> None:
    assert tensors.element_count("x", shape, limit=limit, used=used) == count


def _shaped(
    shape: list[int], raw: bytes | None = None, datatype: str = "FP32"
) -> kserve.ModelInferRequest:
    request = kserve.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype=datatype, shape=shape)
    if raw is not None:
        request.raw_input_contents.append(raw)
    return request


@pytest.mark.parametrize("raw", [b"", b"\0" * 8, None])
@pytest.mark.parametrize("shape", WRAPPING)
def test_wrapping_shapes_are_invalid_arguments(shape: list[int], raw: bytes | None) -> None:
    """Today's int64 product wraps to a small count that matches the bytes sent."""
    with pytest.raises(errors.InvalidRequest, match=r"input x: shape .* elements"):
        tensors.decode_inputs(_shaped(shape, raw), max_elements=LIMIT)


@pytest.mark.parametrize(
    ("request_", "limit", "message"),
    [
        (_shaped([5], b"\0" * 20), 4, r"input x: shape \[5\] has more than 4 elements"),
        (_shaped([4], b"\0" * 20), 4, "input x: 20 raw bytes for shape \\[4\\] of FP32"),
        (_shaped([4], b"\0" * 15, "UINT8"), 64, r"15 raw bytes .* \(expected 4\)"),
        (_shaped([-4], b""), 64, "input x: negative dimension -4"),
    ],
)
def test_raw_inputs_are_checked_against_the_limit_and_their_bytes(
    request_: kserve.ModelInferRequest, limit: int, message: str
) -> None:
    with pytest.raises(errors.InvalidRequest, match=message):
        tensors.decode_inputs(request_, max_elements=limit)


def test_the_element_cap_counts_every_input() -> None:
    request = _shaped([3], b"\0" * 12)
    request.inputs.add(name="z", datatype="FP32", shape=[2])
    request.raw_input_contents.append(b"\0" * 8)
    assert tensors.decode_inputs(request, max_elements=5)["z"].shape == (2,)
    with pytest.raises(errors.InvalidRequest, match=r"input z: .* inputs over 4 elements"):
        tensors.decode_inputs(request, max_elements=4)


def test_typed_contents_are_counted_before_allocation() -> None:
    request = _shaped([2**40, 2**40])
    request.inputs[0].contents.fp32_contents.extend([1.0])
    with pytest.raises(errors.InvalidRequest, match="more than 1048576 elements"):
        tensors.decode_inputs(request, max_elements=LIMIT)
    request = _shaped([3])
    request.inputs[0].contents.fp32_contents.extend([1.0, 2.0])
    with pytest.raises(errors.InvalidRequest, match="input x: 2 values for shape \\[3\\]"):
        tensors.decode_inputs(request, max_elements=LIMIT)


def test_an_input_sent_twice_is_refused() -> None:
    request = _shaped([1], b"\0" * 4)
    request.inputs.add(name="x", datatype="FP32", shape=[1])
    request.raw_input_contents.append(b"\0" * 4)
    with pytest.raises(errors.InvalidRequest, match="input x is sent twice"):
        tensors.decode_inputs(request, max_elements=LIMIT)


def test_outputs_over_the_response_limit_are_refused_before_encoding() -> None:
    response = kserve.ModelInferResponse()
    outputs = {"y": np.zeros(8, np.float32), "z": np.zeros(4, np.float32)}
    tensors.encode_outputs(response, outputs, wanted=["z"], max_bytes=16)
    with pytest.raises(errors.SizeExceeded, match="outputs y, z are 48 bytes, over the 40"):
        tensors.encode_outputs(kserve.ModelInferResponse(), outputs, wanted=[], max_bytes=40)
