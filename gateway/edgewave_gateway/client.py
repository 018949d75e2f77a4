"""An async client of one gateway's operator side: sessions, engine upload, delivery.

`push_engine` uploads an engine to the gateway's cache once, resuming from the verified
offset StatEngine reports; `deliver` asks the gateway to push a cached engine to one agent;
`deliver_engine` does both and, if the gateway dropped a corrupt cached copy, uploads it
again and retries once. The operator's gateway links (`edgewave_operator.agents.gatewayed`)
use it, and so do tests and benchmarks. Calls raise grpc.aio.AioRpcError; callers in the
operator translate them.
"""

from __future__ import annotations

import mmap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from edgewave_proto.agent.v1 import agent_pb2 as pb
from edgewave_proto.agent.v1 import pushwire, wire
from edgewave_proto.gateway.v1 import gateway_pb2 as gw
from edgewave_proto.gateway.v1 import gateway_pb2_grpc

RESUME_OFFSET_KEY = wire.RESUME_OFFSET_KEY
PUSH_ENGINE_METHOD = "/edgewave.gateway.v1.GatewayService/PushEngine"
DEFAULT_CHUNK_BYTES = 1 << 20
MAX_MESSAGE_BYTES = 16 << 20


class GatewayClient:
    def __init__(
        self,
        endpoint: str,
        *,
        ca_pem: bytes,
        cert_pem: bytes,
        key_pem: bytes,
        server_name: str | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", 60_000),
        ]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        credentials = grpc.ssl_channel_credentials(ca_pem, key_pem, cert_pem)
        self.endpoint = endpoint
        self.chunk_bytes = chunk_bytes
        self._channel = grpc.aio.secure_channel(endpoint, credentials, options=options)
        self._stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)
        self._push: Any = self._channel.stream_unary(
            PUSH_ENGINE_METHOD,
            request_serializer=lambda message: message,
            response_deserializer=pb.PushResponse.FromString,
        )
        # Data bytes this client uploaded to the gateway, over every call (benchmarks).
        self.uploaded_bytes = 0

    async def close(self) -> None:
        await self._channel.close(grace=None)

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def sessions(self) -> gw.ListSessionsResponse:
        return await self._stub.ListSessions(gw.ListSessionsRequest(), timeout=30)

    async def watch_sessions(self) -> AsyncIterator[gw.ListSessionsResponse]:
        """Every agent's session now, then again after each change (until cancelled)."""
        call = self._stub.WatchSessions(gw.ListSessionsRequest())
        try:
            async for listing in call:
                yield listing
        finally:
            call.cancel()

    async def stat_engine(self, digest: str) -> pb.StatResponse:
        return await self._stub.StatEngine(pb.StatRequest(digest=digest), timeout=30)

    async def set_pins(self, owner: str, digests: list[str]) -> list[str]:
        response = await self._stub.SetPins(
            gw.SetPinsRequest(owner=owner, digests=digests), timeout=30
        )
        return list(response.pinned)

    async def push_engine(
        self,
        path: Path,
        digest: str,
        *,
        progress: Callable[[int], Awaitable[None]] | None = None,
    ) -> pb.PushResponse:
        """Make the gateway's cache hold the engine, sending only what it lacks verified."""
        size = path.stat().st_size  # noqa: ASYNC240  # one stat, not worth a thread
        stat = await self.stat_engine(digest)
        if stat.complete:
            return pb.PushResponse(
                digest=digest, size_bytes=size, complete=True, resumed_from=size,
                already_present=True, verified_offset=size,
            )  # fmt: skip
        call = self._push(None, timeout=None)
        try:
            header = pb.PushChunk(digest=digest, total_size=size, offset=stat.verified_offset)
            await call.write(header.SerializeToString())
            metadata = dict(await call.initial_metadata() or ())
            resume = metadata.get(RESUME_OFFSET_KEY)
            if resume is None:
                response: pb.PushResponse = await call
                return response
            with (
                path.open("rb") as handle,
                mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
            ):
                position = int(resume)
                while position < size:
                    if progress is not None:
                        await progress(position)
                    end = min(position + self.chunk_bytes, size)
                    with memoryview(mapped)[position:end] as data:
                        message = pushwire.encode_data_chunk(position, data)
                    await call.write(message)
                    self.uploaded_bytes += end - position
                    position = end
            await call.done_writing()
            response = await call
            return response
        except BaseException:
            call.cancel()
            raise

    async def deliver(
        self,
        agent: str,
        digest: str,
        *,
        chunk_bytes: int = 0,
        progress: Callable[[gw.DeliverProgress], Awaitable[None]] | None = None,
    ) -> gw.DeliverProgress:
        """Have the gateway push a cached engine to `agent`; the final progress message."""
        call = self._stub.Deliver(
            gw.DeliverRequest(agent=agent, digest=digest, chunk_bytes=chunk_bytes)
        )
        try:
            async for update in call:
                if update.done:
                    return update
                if progress is not None:
                    await progress(update)
        finally:
            call.cancel()
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(),
            details=f"the delivery of {digest[:12]} to {agent} ended without a result",
            debug_error_string="",
        )

    async def deliver_engine(self, agent: str, path: Path, digest: str) -> gw.DeliverProgress:
        """Upload (if the cache lacks it) and deliver; one re-upload if the cached copy was bad."""
        for attempt in (1, 2):
            await self.push_engine(path, digest)
            try:
                return await self.deliver(agent, digest)
            except grpc.aio.AioRpcError as error:
                if attempt == 2 or error.code() != grpc.StatusCode.DATA_LOSS:
                    raise
        raise AssertionError("unreachable")
