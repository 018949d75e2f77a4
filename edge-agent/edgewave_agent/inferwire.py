"""ModelInfer's raw tensor bytes on the wire without copies, as `pushwire` does for pushes.

protobuf copies a `bytes` field when it parses a message and again on every read of it, and
once more when it serializes one: for a 60 MB input that is two extra copies on the way in
and two on the way out, each held while the request is answered. Here:

- `split_request` reads a received `ModelInferRequest` in place: `raw_input_contents` are
  views of the message bytes; protobuf parses only the rest (names, shapes, typed values).
- `join_response` appends `raw_output_contents` to a serialized `ModelInferResponse` that
  has none, copying each output once, straight into the message.

Both follow the protobuf encoding (`pushwire.read_field`): any field order, unknown fields
kept for protobuf, malformed bytes refused; field numbers come from the generated descriptor.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgewave_proto.agent.v1 import pushwire
from edgewave_proto.kserve.v2 import grpc_predict_v2_pb2 as kserve

_RAW_INPUT = kserve.ModelInferRequest.DESCRIPTOR.fields_by_name["raw_input_contents"].number
_RAW_OUTPUT = kserve.ModelInferResponse.DESCRIPTOR.fields_by_name["raw_output_contents"].number
_LEN = 2
_RAW_OUTPUT_TAG = pushwire.varint(_RAW_OUTPUT << 3 | _LEN)

DecodeError = pushwire.DecodeError


def split_request(message: bytes) -> tuple[kserve.ModelInferRequest, list[memoryview]]:
    """The request without `raw_input_contents`, and those as views of `message`, in order.

    Raises DecodeError (or protobuf's DecodeError) on malformed bytes.
    """
    view = memoryview(message)
    raw: list[memoryview] = []
    rest: list[memoryview] = []
    position = 0
    while position < len(message):
        number, wire_type, value, end = pushwire.read_field(message, position)
        if number == _RAW_INPUT and wire_type == _LEN:
            raw.append(view[value:end])
        else:
            rest.append(view[position:end])
        position = end
    # Without raw contents, protobuf parses the message as it came (no joined copy).
    remainder = message if not raw else b"".join(rest)
    return kserve.ModelInferRequest.FromString(remainder), raw


def join_response(head: bytes, raw_outputs: Sequence[memoryview]) -> bytes:
    """`head` (a serialized response without raw outputs) followed by `raw_outputs`."""
    parts: list[bytes | memoryview] = [head]
    for data in raw_outputs:
        parts += (_RAW_OUTPUT_TAG, pushwire.varint(data.nbytes), data)
    return b"".join(parts)
