"""PushChunk's hand-written wire codec agrees with protobuf, byte for byte."""

from __future__ import annotations

import random

import pytest
from google.protobuf.message import DecodeError as ProtobufDecodeError

from edgewave_proto.agent.v1 import agent_pb2 as pb
from edgewave_proto.agent.v1 import pushwire

DIGEST = "ab" * 32


def _random_chunk(rng: random.Random) -> pb.PushChunk:
    return pb.PushChunk(
        digest=rng.choice(["", DIGEST, "é" * rng.randrange(1, 40)]),
        total_size=rng.choice([0, 1, 127, 128, 2**35, 2**64 - 1]),
        offset=rng.choice([0, 1, 300, 2**21, 2**63]),
        data=rng.randbytes(rng.choice([0, 1, 127, 128, 70_000])),
    )


def _fields(chunk: pb.PushChunk | pushwire.PushChunkView) -> tuple[str, int, int, bytes]:
    return chunk.digest, chunk.total_size, chunk.offset, bytes(chunk.data)


@pytest.mark.parametrize("seed", range(40))
def test_decode_reads_what_protobuf_writes(seed: int) -> None:
    chunk = _random_chunk(random.Random(seed))
    assert _fields(pushwire.decode(chunk.SerializeToString())) == _fields(chunk)


def test_decoded_data_is_a_view_of_the_message_not_a_copy() -> None:
    message = pb.PushChunk(offset=5, data=b"x" * 4096).SerializeToString()
    view = pushwire.decode(message)
    assert view.data.obj is message
    assert view.data.readonly


@pytest.mark.parametrize("offset", [0, 1, 127, 128, 16_384, 2**40])
@pytest.mark.parametrize("size", [0, 1, 127, 128, 65_536, 1 << 20])
def test_encode_matches_protobuf(offset: int, size: int) -> None:
    data = random.Random(offset ^ size).randbytes(size)
    expected = pb.PushChunk(offset=offset, data=data).SerializeToString()
    assert pushwire.encode_data_chunk(offset, memoryview(data)) == expected


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    return pushwire.varint(number << 3 | wire_type) + payload


def _len(number: int, payload: bytes) -> bytes:
    return _field(number, 2, pushwire.varint(len(payload)) + payload)


@pytest.mark.parametrize(
    "message",
    [
        # Fields in reverse order, and each known field twice (the last one wins).
        _len(4, b"first") + _len(4, b"second") + _field(3, 0, b"\x05") + _len(1, DIGEST.encode()),
        _field(2, 0, b"\x01") + _field(2, 0, b"\x80\x01") + _field(3, 0, b"\x07\x00"[:1]),
        # Unknown fields of every wire type protobuf 3 writes, between known ones.
        _field(9, 0, b"\x96\x01")
        + _len(4, b"data")
        + _field(10, 1, b"12345678")
        + _len(11, b"unknown")
        + _field(12, 5, b"1234")
        + _field(3, 0, b"\x2a"),
        # A known number with another wire type: protobuf keeps it as an unknown field.
        _field(4, 0, b"\x01") + _field(3, 2, b"\x01z") + _len(4, b"kept"),
        b"",
    ],
)
def test_decode_agrees_with_protobuf_on_odd_but_valid_messages(message: bytes) -> None:
    assert _fields(pushwire.decode(message)) == _fields(pb.PushChunk.FromString(message))


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"\x22\x05abc", "runs past the end"),
        (b"\x18\xff\xff", "truncated varint"),
        (b"\x18" + b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
        (b"\x51" + b"1234", "runs past the end"),  # field 10, fixed64, 4 of 8 bytes
        (b"\x0a\x02\xff\xfe", "not valid UTF-8"),
        (b"\x00\x01", "field number 0"),
        (b"\x4e", "wire type 6"),
    ],
)
def test_malformed_messages_are_refused_as_protobuf_refuses_them(
    message: bytes, reason: str
) -> None:
    with pytest.raises(ProtobufDecodeError):
        pb.PushChunk.FromString(message)
    with pytest.raises(pushwire.DecodeError, match=reason):
        pushwire.decode(message)
