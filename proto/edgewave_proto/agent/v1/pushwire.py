"""`PushChunk` on the wire without copying its data: the one message that carries bulk bytes.

protobuf copies a `bytes` field when it parses a message and again on every read of the
field, and when it serializes one: for a 1 MiB chunk each copy is a pass over the data and,
often, fresh pages to fault in. Pushing an engine is the agent's hottest path, so both ends
handle this message's wire format themselves; every other message goes through protobuf.

- `encode_data_chunk` (client) builds `PushChunk(offset=..., data=...)` with the data copied
  once, into the message.
- `decode` (agent) reads a received message in place: `data` is a view of the message
  bytes, never a copy.

Both follow the protobuf encoding: varints, length-delimited fields, any field order, the
last occurrence of a field wins, unknown fields skipped, malformed bytes refused where
protobuf refuses them (and proto2 groups, which proto3 never sends). The field numbers come
from the generated descriptor, so a change to `agent.proto` cannot leave them behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgewave_proto.agent.v1 import agent_pb2 as pb

_FIELDS = pb.PushChunk.DESCRIPTOR.fields_by_name
_DIGEST = _FIELDS["digest"].number
_TOTAL_SIZE = _FIELDS["total_size"].number
_OFFSET = _FIELDS["offset"].number
_DATA = _FIELDS["data"].number

# Wire types, and the one each known field has (the last occurrence of a field wins).
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_FIXED_SIZES = {_I64: 8, _I32: 4}
_WIRE_TYPES = {_DIGEST: _LEN, _TOTAL_SIZE: _VARINT, _OFFSET: _VARINT, _DATA: _LEN}
_U64 = (1 << 64) - 1


class DecodeError(ValueError):
    """The bytes are not a valid `PushChunk` message."""


@dataclass(frozen=True, slots=True)
class PushChunkView:
    """A received `PushChunk`; `data` is a view of the message bytes (read-only)."""

    digest: str = ""
    total_size: int = 0
    offset: int = 0
    data: memoryview = field(default_factory=lambda: memoryview(b""))


def varint(value: int) -> bytes:
    """Protobuf's base-128 varint encoding of a non-negative integer."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_OFFSET_TAG = varint(_OFFSET << 3 | _VARINT)
_DATA_TAG = varint(_DATA << 3 | _LEN)


def encode_data_chunk(offset: int, data: bytes | memoryview) -> bytes:
    """The bytes `PushChunk(offset=offset, data=data).SerializeToString()` gives.

    Fields in number order, each left out when empty as protobuf does; `data` is copied
    once, straight into the message (it may be a view of a memory map).
    """
    head = _OFFSET_TAG + varint(offset) if offset else b""
    if not len(data):
        return head
    return b"".join((head, _DATA_TAG, varint(len(data)), data))


def _read_varint(message: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(message):
            raise DecodeError("truncated varint")
        byte = message[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value & _U64, position
        shift += 7
        if shift >= 70:
            raise DecodeError("varint longer than 10 bytes")


def read_field(message: bytes, position: int) -> tuple[int, int, int, int]:
    """(field number, wire type, value, next position) of the field at `position`.

    The value of a varint is the integer; of a length-delimited field, where it starts (it
    ends at the next position); of a fixed-size field, nothing (0).
    """
    tag, position = _read_varint(message, position)
    number, wire_type = tag >> 3, tag & 7
    if number == 0:
        raise DecodeError("field number 0")
    if wire_type == _VARINT:
        value, position = _read_varint(message, position)
        return number, wire_type, value, position
    if wire_type == _LEN:
        length, start = _read_varint(message, position)
        position = start + length
        value = start
    elif wire_type in _FIXED_SIZES:
        value, position = 0, position + _FIXED_SIZES[wire_type]
    else:
        raise DecodeError(f"field {number} has unsupported wire type {wire_type}")
    if position > len(message):
        raise DecodeError(f"field {number} runs past the end of the message")
    return number, wire_type, value, position


def decode(message: bytes) -> PushChunkView:
    """Parse a serialized `PushChunk` without copying its `data`; DecodeError if malformed."""
    view = memoryview(message)
    known: dict[int, int | memoryview] = {}
    position = 0
    while position < len(message):
        number, wire_type, value, end = read_field(message, position)
        # A known number with another wire type is an unknown field to protobuf too.
        if _WIRE_TYPES.get(number) == wire_type:
            known[number] = view[value:end] if wire_type == _LEN else value
        position = end
    digest = known.get(_DIGEST, b"")
    data = known.get(_DATA, view[0:0])
    total_size, offset = known.get(_TOTAL_SIZE, 0), known.get(_OFFSET, 0)
    assert isinstance(data, memoryview) and isinstance(total_size, int)
    assert isinstance(offset, int) and not isinstance(digest, int)
    try:
        text = str(digest, "utf-8")
    except UnicodeDecodeError as error:
        raise DecodeError("digest is not valid UTF-8") from error
    return PushChunkView(digest=text, total_size=total_size, offset=offset, data=data)
