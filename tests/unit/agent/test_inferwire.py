"""ModelInfer's raw contents read in place and written once, agreeing with protobuf."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf.message import DecodeError

from edgewave_agent import inferwire
from edgewave_proto.agent.v1 import pushwire
from edgewave_proto.kserve.v2 import grpc_predict_v2_pb2 as kserve


def _request() -> kserve.ModelInferRequest:
    request = kserve.ModelInferRequest(model_name="m", model_version="7", id="r1")
    request.inputs.add(name="x", datatype="FP32", shape=[2])
    request.inputs.add(name="z", datatype="UINT8", shape=[3])
    request.outputs.add(name="y")
    request.raw_input_contents.extend([np.array([1, 2], np.float32).tobytes(), b"\x01\x02\x03"])
    return request


def test_split_request_views_the_raw_contents_and_parses_the_rest() -> None:
    request = _request()
    message = request.SerializeToString()
    rest, raw = inferwire.split_request(message)
    assert [bytes(r) for r in raw] == list(request.raw_input_contents)
    assert all(r.obj is message for r in raw)  # views, not copies
    expected = kserve.ModelInferRequest()
    expected.CopyFrom(request)
    del expected.raw_input_contents[:]
    assert rest == expected


def test_split_request_takes_any_field_order_and_keeps_unknown_fields() -> None:
    request = _request()
    raw_first = b"".join(
        pushwire.varint(7 << 3 | 2) + pushwire.varint(len(r)) + r
        for r in request.raw_input_contents
    )
    del request.raw_input_contents[:]
    unknown = pushwire.varint(99 << 3 | 0) + pushwire.varint(5)
    rest, raw = inferwire.split_request(raw_first + request.SerializeToString() + unknown)
    assert [bytes(r) for r in raw] == [np.array([1, 2], np.float32).tobytes(), b"\x01\x02\x03"]
    assert rest.model_name == "m" and [i.name for i in rest.inputs] == ["x", "z"]


def test_a_request_without_raw_contents_is_parsed_as_it_came() -> None:
    request = kserve.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype="FP32", shape=[2]).contents.fp32_contents.extend([1, 2])
    rest, raw = inferwire.split_request(request.SerializeToString())
    assert raw == [] and rest == request


@pytest.mark.parametrize(
    "message",
    [
        b"\x3a\x10abc",  # raw_input_contents longer than the message
        b"\x3a",  # truncated length
        b"\x0b",  # a group: proto3 never sends one
        b"\x00\x01",  # field number 0
    ],
)
def test_malformed_requests_are_refused(message: bytes) -> None:
    with pytest.raises((inferwire.DecodeError, DecodeError)):
        inferwire.split_request(message)


def test_join_response_equals_protobufs_serialization() -> None:
    response = kserve.ModelInferResponse(model_name="m", model_version="7", id="r1")
    response.outputs.add(name="y", datatype="FP32", shape=[2])
    outputs = [
        memoryview(np.array([1, 2], np.float32).tobytes()),
        memoryview(b""),
        memoryview(b"x" * 300),
    ]
    joined = inferwire.join_response(response.SerializeToString(), outputs)
    response.raw_output_contents.extend(bytes(o) for o in outputs)
    assert kserve.ModelInferResponse.FromString(joined) == response
    assert joined == response.SerializeToString()
