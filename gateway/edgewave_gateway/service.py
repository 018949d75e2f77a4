"""The operator's side of the gateway (edgewave.gateway.v1.GatewayService), thin.

Translates between protobuf and the cores: the session registry (listing and watching
who is connected), the engine cache (stat, resumable upload, pins) and delivery. Every call
needs the operator's certificate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from edgewave_api import identities
from edgewave_gateway import cache, delivering, errors, peers, sessions
from edgewave_gateway.settings import GatewayConfig
from edgewave_proto.agent.v1 import agent_pb2 as pb
from edgewave_proto.agent.v1 import pushwire, wire
from edgewave_proto.gateway.v1 import gateway_pb2 as gw
from edgewave_proto.gateway.v1 import gateway_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
RESUME_OFFSET_KEY = wire.RESUME_OFFSET_KEY


def _session_info(session: sessions.Session) -> gw.SessionInfo:
    return gw.SessionInfo(
        agent=session.agent,
        session_id=session.session_id,
        peer=session.peer,
        connected_since_unix_seconds=session.connected_since,
        last_seen_unix_seconds=session.last_seen,
        region=session.region,
        zone=session.zone,
        agent_version=session.agent_version,
    )


async def abort_with(context: Context, error: errors.CacheError) -> None:
    """The one place a cache or delivery error becomes a gRPC status."""
    trailing: tuple[tuple[str, str], ...] = ()
    if error.expected_offset is not None:
        trailing = ((wire.EXPECTED_OFFSET_KEY, str(error.expected_offset)),)
    await context.abort(grpc.StatusCode[error.status], str(error), trailing)


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(
        self,
        *,
        config: GatewayConfig,
        registry: sessions.Registry,
        engines: cache.EngineCache,
        delivery: delivering.Delivery,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._registry = registry
        self._cache = engines
        self._delivery = delivery
        self._clock = clock

    def _listing(self) -> gw.ListSessionsResponse:
        return gw.ListSessionsResponse(
            gateway=self._config.name,
            sessions=[_session_info(s) for s in self._registry.sessions()],
        )

    async def ListSessions(
        self, request: gw.ListSessionsRequest, context: Context
    ) -> gw.ListSessionsResponse:
        await peers.require(
            context, identities.Role.OPERATOR, trust_domain=self._config.tls.trust_domain
        )
        return self._listing()

    async def WatchSessions(
        self, request: gw.ListSessionsRequest, context: Context
    ) -> AsyncIterator[gw.ListSessionsResponse]:
        await peers.require(
            context, identities.Role.OPERATOR, trust_domain=self._config.tls.trust_domain
        )
        changed = asyncio.Event()
        stop = self._registry.listen(changed.set)
        try:
            while True:
                changed.clear()
                yield self._listing()
                await changed.wait()
        finally:
            stop()

    async def StatEngine(self, request: pb.StatRequest, context: Context) -> pb.StatResponse:
        await peers.require(
            context, identities.Role.OPERATOR, trust_domain=self._config.tls.trust_domain
        )
        try:
            stat = self._cache.stat(request.digest)
        except errors.CacheError as error:
            await abort_with(context, error)
        return pb.StatResponse(
            digest=stat.digest,
            complete=stat.complete,
            verified_offset=stat.verified_offset,
            total_size=stat.total_size,
            in_progress=stat.in_progress,
            received_offset=stat.received_offset,
        )

    async def PushEngine(  # type: ignore[override]  # raw bytes, read in place (pushwire)
        self, request_iterator: AsyncIterator[bytes], context: Context
    ) -> pb.PushResponse:
        await peers.require(
            context, identities.Role.OPERATOR, trust_domain=self._config.tls.trust_domain
        )
        upload: cache.Upload | None = None
        chunks = 0
        try:
            async for raw in request_iterator:
                chunks += 1
                try:
                    chunk = pushwire.decode(raw)
                except pushwire.DecodeError as error:
                    raise errors.InvalidRequest(
                        f"push message {chunks} is not a valid PushChunk ({error})"
                    ) from None
                if upload is None:
                    upload = self._cache.begin(
                        digest=chunk.digest, total_size=chunk.total_size, offset=chunk.offset
                    )
                    if upload.complete:
                        return _pushed(upload)
                    await context.send_initial_metadata(
                        ((RESUME_OFFSET_KEY, str(upload.resumed_from)),)
                    )
                await asyncio.to_thread(upload.take, chunk.offset, chunk.data)
            if upload is None:
                raise errors.InvalidRequest("the push carried no chunk: send at least one")
            await asyncio.to_thread(upload.finish)
            return _pushed(upload)
        except errors.CacheError as error:
            if upload is not None:
                await asyncio.to_thread(upload.interrupt)
            await abort_with(context, error)
            raise AssertionError("unreachable: abort raises") from None
        except BaseException:
            if upload is not None:
                await asyncio.to_thread(upload.interrupt)
            raise

    async def SetPins(self, request: gw.SetPinsRequest, context: Context) -> gw.SetPinsResponse:
        await peers.require(
            context, identities.Role.OPERATOR, trust_domain=self._config.tls.trust_domain
        )
        try:
            pinned = self._cache.set_pins(request.owner, list(request.digests))
        except errors.CacheError as error:
            await abort_with(context, error)
        return gw.SetPinsResponse(pinned=sorted(pinned))

    async def Deliver(
        self, request: gw.DeliverRequest, context: Context
    ) -> AsyncIterator[gw.DeliverProgress]:
        identity = await peers.require(
            context, identities.Role.OPERATOR, trust_domain=self._config.tls.trust_domain
        )
        try:
            async for progress in self._delivery.deliver(
                agent=request.agent,
                digest=request.digest,
                chunk_bytes=request.chunk_bytes,
                caller_cert_pem=identity.cert_pem,
            ):
                yield progress
        except errors.CacheError as error:
            await abort_with(context, error)


def _pushed(upload: cache.Upload) -> pb.PushResponse:
    return pb.PushResponse(
        digest=upload.digest,
        size_bytes=upload.total_size,
        complete=upload.complete,
        resumed_from=upload.resumed_from,
        received_bytes=upload.received_bytes,
        already_present=upload.already_present,
        verified_offset=upload.verified_offset,
    )
