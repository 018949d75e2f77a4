"""KServe v2 tensors <-> numpy, raw and typed contents."""

from __future__ import annotations

import numpy as np
import pytest

from edgewave_agent import errors, tensors
from edgewave_proto.kserve.v2 import grpc_predict_v2_pb2 as kserve


def _request(**tensor: object) -> kserve.ModelInferRequest:
    request = kserve.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype="FP32", shape=[2, 2])
    return request


def test_raw_inputs_and_outputs() -> None:
    request = _request()
    array = np.arange(4, dtype=np.float32).reshape(2, 2)
    request.raw_input_contents.append(array.tobytes())
    decoded = tensors.decode_inputs(request)
    np.testing.assert_array_equal(decoded["x"], array)
    response = kserve.ModelInferResponse()
    tensors.encode_outputs(response, {"y": array.astype(np.int64), "z": array}, wanted=["y"])
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("y", "INT64", [2, 2])
    ]
    assert np.frombuffer(response.raw_output_contents[0], dtype=np.int64).tolist() == [0, 1, 2, 3]


def test_typed_contents() -> None:
    request = _request()
    request.inputs[0].contents.fp32_contents.extend([1, 2, 3, 4])
    np.testing.assert_array_equal(tensors.decode_inputs(request)["x"], [[1, 2], [3, 4]])


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
        tensors.decode_inputs(request)


def test_unknown_output_is_named() -> None:
    with pytest.raises(errors.InvalidRequest, match="'q' does not exist"):
        tensors.encode_outputs(kserve.ModelInferResponse(), {"y": np.zeros(1)}, wanted=["q"])
