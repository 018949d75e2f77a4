"""Metadata and statuses as they travel inside tunnel frames (edgewave.gateway.v1).

Pure translation between gRPC's metadata tuples / status codes and the `Metadata` and
`Status` messages, shared by the gateway and the agent so both ends agree byte for byte.
Keys that steer the transport itself (`grpc-*`, HTTP/2 pseudo-headers, the routing key)
never cross the tunnel.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import grpc

from edgewave_proto.agent.v1 import wire
from edgewave_proto.gateway.v1 import gateway_pb2 as gw

# Names the agent a relayed AgentService call is for.
AGENT_KEY = wire.GATEWAY_ROUTE_KEY
# The caller's certificate (PEM) as the gateway verified it; trusted by the agent only on its
# local control socket.
CALLER_CERT_KEY = wire.CALLER_CERT_KEY
_NOT_RELAYED = frozenset({AGENT_KEY, CALLER_CERT_KEY, "user-agent", "te", "content-type"})
MAX_METADATA_ENTRIES = 64
MAX_METADATA_BYTES = 16 << 10
_CODES = {code.value[0]: code for code in grpc.StatusCode}

MetadataValue = str | bytes
MetadataPairs = Sequence[tuple[str, MetadataValue]]


def relayable(key: str) -> bool:
    return not (key.startswith((":", "grpc-")) or key in _NOT_RELAYED)


def to_frames(pairs: Iterable[tuple[str, MetadataValue]] | None) -> list[gw.Metadata]:
    """The relayable entries of gRPC metadata, bounded in count and size (ValueError)."""
    frames: list[gw.Metadata] = []
    total = 0
    for key, value in pairs or ():
        if not relayable(key):
            continue
        if isinstance(value, bytes):
            frames.append(gw.Metadata(key=key, binary=value))
        else:
            frames.append(gw.Metadata(key=key, value=value))
        total += len(key) + len(value)
        if len(frames) > MAX_METADATA_ENTRIES or total > MAX_METADATA_BYTES:
            raise ValueError(
                f"metadata too large to relay: at most {MAX_METADATA_ENTRIES} entries and"
                f" {MAX_METADATA_BYTES} bytes"
            )
    return frames


def from_frames(frames: Iterable[gw.Metadata]) -> tuple[tuple[str, MetadataValue], ...]:
    """gRPC metadata from frames; transport keys are dropped whatever the sender put there."""
    pairs: list[tuple[str, MetadataValue]] = []
    for frame in frames:
        key = frame.key
        if not relayable(key) or key != key.lower():
            continue
        pairs.append((key, frame.binary if key.endswith("-bin") else frame.value))
    return tuple(pairs)


def status_code(number: int) -> grpc.StatusCode:
    """The status code for its number; an unknown number reads as UNKNOWN."""
    return _CODES.get(number, grpc.StatusCode.UNKNOWN)


def status_frame(
    code: grpc.StatusCode, details: str | None, trailing: Iterable[tuple[str, MetadataValue]] | None
) -> gw.Status:
    return gw.Status(
        code=code.value[0], details=details or "", trailing_metadata=to_frames(trailing)
    )
