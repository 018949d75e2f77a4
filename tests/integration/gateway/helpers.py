"""Shared helpers of the gateway tests: waiting for sessions, listening sockets of a pid."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from edgewave_gateway import testing
from edgewave_proto.gateway.v1 import gateway_pb2 as gw
from edgewave_proto.gateway.v1 import gateway_pb2_grpc

_LISTEN = "0A"


def gateway_channel(
    pki_: testing.GatewayPki, address: str, *, cert: tuple[bytes, bytes] | None = None
) -> grpc.aio.Channel:
    key, chain = cert or (pki_.operator.key_pem, pki_.operator.cert_pem)
    credentials = grpc.ssl_channel_credentials(pki_.ca.cert_pem, key, chain)
    return grpc.aio.secure_channel(
        address,
        credentials,
        options=[
            ("grpc.ssl_target_name_override", "localhost"),
            ("grpc.max_send_message_length", 64 << 20),
            ("grpc.max_receive_message_length", 64 << 20),
        ],
    )


async def wait_sessions(
    pki_: testing.GatewayPki, address: str, agents: set[str], *, tries: int = 600
) -> gw.ListSessionsResponse:
    """Until every agent in `agents` has a session with the gateway (bounded)."""
    async with gateway_channel(pki_, address) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        listing = gw.ListSessionsResponse()
        for _ in range(tries):
            try:
                listing = await stub.ListSessions(gw.ListSessionsRequest(), timeout=5)
                if agents <= {s.agent for s in listing.sessions}:
                    return listing
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"sessions {agents} never all appeared; last listing: {listing}")


def listening_tcp_ports(pid: int) -> list[int]:
    """TCP ports in LISTEN state held by `pid` (IPv4 and IPv6), from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = []
    for table in ("tcp", "tcp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _LISTEN and inode in inodes:
                ports.append(int(local.rsplit(":", 1)[1], 16))
    return ports
