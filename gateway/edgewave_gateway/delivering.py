"""Deliver an engine from the gateway's cache to one agent, over the agent's session.

The agent's own resumable Push is used as the operator would: Stat first, then one Push
stream from the agent's verified offset, waiting for its go-ahead before sending data. The
agent still checks sha256 and, at activation, the operator's signature, so the gateway can
make a delivery fail but never change what an agent activates. When the agent finds the
bytes do not match the digest (DATA_LOSS), the cached copy is re-hashed and, if it is the
one at fault, dropped, and the caller is told to upload it again.
"""

from __future__ import annotations

import asyncio
import mmap
from collections.abc import AsyncIterator
from pathlib import Path

from edgewave_api import identities
from edgewave_gateway import cache, calls, errors, frames, sessions
from edgewave_gateway.settings import GatewayConfig
from edgewave_proto.agent.v1 import agent_pb2 as pb
from edgewave_proto.agent.v1 import pushwire, wire
from edgewave_proto.gateway.v1 import gateway_pb2 as gw

STAT_METHOD = "/edgewave.agent.v1.AgentService/Stat"
PUSH_METHOD = "/edgewave.agent.v1.AgentService/Push"
RESUME_OFFSET_KEY = wire.RESUME_OFFSET_KEY
DEFAULT_CHUNK_BYTES = 1 << 20
MIN_CHUNK_BYTES = 4 << 10
# A progress message at most this often (in bytes sent), and after the last chunk.
PROGRESS_BYTES = 8 << 20
STAT_TIMEOUT_SECONDS = 30.0


class Delivery:
    def __init__(
        self, *, config: GatewayConfig, registry: sessions.Registry, engines: cache.EngineCache
    ) -> None:
        self._config = config
        self._registry = registry
        self._cache = engines

    async def _open(
        self, agent: str, method: str, *, caller_cert_pem: bytes, seconds: float | None
    ) -> calls.TunnelledCall:
        try:
            return await calls.open_call(
                self._registry,
                agent=agent,
                method=method,
                timeout_seconds=seconds,
                caller_cert_pem=caller_cert_pem,
                attach_timeout=self._config.attach_timeout_seconds,
                max_calls=self._config.max_calls_per_agent,
            )
        except sessions.SessionGone as error:
            raise errors.AgentOffline(f"gateway {self._config.name}: {error}") from None
        except calls.TooManyCalls as error:
            raise errors.AgentCallFailed(str(error), status="RESOURCE_EXHAUSTED") from None

    def _check(self, *, agent: str, digest: str, chunk_bytes: int) -> int:
        try:
            identities.check_name(agent)
        except identities.IdentityRefused as error:
            raise errors.InvalidRequest(f"agent: {error}") from None
        cache.check_digest(digest)
        chunk = chunk_bytes or DEFAULT_CHUNK_BYTES
        largest = int(self._config.max_message_bytes) - (64 << 10)
        if not MIN_CHUNK_BYTES <= chunk <= largest:
            raise errors.InvalidRequest(
                f"chunk_bytes must be between {MIN_CHUNK_BYTES} and {largest}, not {chunk}"
            )
        return chunk

    async def deliver(
        self, *, agent: str, digest: str, chunk_bytes: int, caller_cert_pem: bytes
    ) -> AsyncIterator[gw.DeliverProgress]:
        chunk = self._check(agent=agent, digest=digest, chunk_bytes=chunk_bytes)
        with self._cache.using(digest) as path:
            size = path.stat().st_size
            stat = pb.StatResponse.FromString(
                await self._unary(
                    agent,
                    STAT_METHOD,
                    pb.StatRequest(digest=digest).SerializeToString(),
                    caller_cert_pem=caller_cert_pem,
                )
            )
            progress = gw.DeliverProgress(agent=agent, digest=digest, size_bytes=size)
            if stat.complete:
                progress.MergeFrom(
                    gw.DeliverProgress(
                        offset=size, done=True, resumed_from=size, already_present=True
                    )
                )
                yield progress
                return
            if stat.in_progress:
                raise errors.AgentCallFailed(
                    f"agent {agent}: another push of {digest[:12]} is running; retry when it ends",
                    status="ABORTED",
                )
            async for update in self._push(
                agent, path, progress, offset=stat.verified_offset, chunk=chunk,
                caller_cert_pem=caller_cert_pem,
            ):  # fmt: skip
                yield update

    async def _unary(
        self, agent: str, method: str, request: bytes, *, caller_cert_pem: bytes
    ) -> bytes:
        call = await self._open(
            agent, method, caller_cert_pem=caller_cert_pem, seconds=STAT_TIMEOUT_SECONDS
        )
        completed = False
        try:
            await call.send(request)
            await call.half_close()
            response = b""
            while (frame := await call.receive()) is not None:
                if frame.WhichOneof("kind") == "message":
                    response = frame.message
                elif frame.WhichOneof("kind") == "status":
                    completed = True
                    _raise_for_status(agent, method, frame)
                    return response
            raise errors.AgentOffline(f"agent {agent} went away during {_short(method)}")
        finally:
            call.close(cancelled=not completed)

    async def _push(
        self,
        agent: str,
        path: Path,
        progress: gw.DeliverProgress,
        *,
        offset: int,
        chunk: int,
        caller_cert_pem: bytes,
    ) -> AsyncIterator[gw.DeliverProgress]:
        size = progress.size_bytes
        call = await self._open(agent, PUSH_METHOD, caller_cert_pem=caller_cert_pem, seconds=None)
        completed = False
        sent = 0
        try:
            header = pb.PushChunk(digest=progress.digest, total_size=size, offset=offset)
            await call.send(header.SerializeToString())
            frame = await call.receive()
            resume: int | None = None
            if frame is not None and frame.WhichOneof("kind") == "headers":
                for key, value in frames.from_frames(frame.headers.metadata):
                    if key == RESUME_OFFSET_KEY:
                        resume = int(value)
                frame = None
            if resume is not None:
                counter = [0]
                async for update in _send_data(
                    call, path, progress, start=resume, chunk=chunk, sent=counter
                ):
                    yield update
                sent = counter[0]
                await call.half_close()
            response, status = await _response(call, frame)
            if status is None:
                raise errors.AgentOffline(f"agent {agent} went away during Push; deliver again")
            completed = True
            await self._check_push_status(agent, progress.digest, status)
            if not response.complete:
                raise errors.AgentCallFailed(
                    f"agent {agent}: push of {progress.digest[:12]} ended at"
                    f" {response.verified_offset} of {size} bytes; deliver again",
                    status="UNAVAILABLE",
                )
            final = _progress(progress, offset=size, sent=sent)
            final.done = True
            final.resumed_from = response.resumed_from
            final.already_present = response.already_present
            yield final
        finally:
            call.close(cancelled=not completed)

    async def _check_push_status(self, agent: str, digest: str, frame: gw.CallUp) -> None:
        # DATA_LOSS: the agent found the bytes do not match; is the cached copy at fault?
        if frame.status.code == 15 and not await asyncio.to_thread(self._cache.verify, digest):
            raise errors.DigestMismatch(
                f"agent {agent} refused {digest[:12]}: the gateway's cached copy no longer"
                " matches its digest and was dropped; push the engine to the gateway again"
            )
        _raise_for_status(agent, PUSH_METHOD, frame)


async def _send_data(
    call: calls.TunnelledCall,
    path: Path,
    progress: gw.DeliverProgress,
    *,
    start: int,
    chunk: int,
    sent: list[int],
) -> AsyncIterator[gw.DeliverProgress]:
    """Stream the engine's bytes from `start`, with a progress message every few MiB."""
    size = progress.size_bytes
    reported = position = start
    with (
        path.open("rb") as handle,
        mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
    ):
        while position < size:
            end = min(position + chunk, size)
            with memoryview(mapped)[position:end] as data:
                message = pushwire.encode_data_chunk(position, data)
            if not await call.send(message):
                return  # the agent ended the push: its status says why
            sent[0] += end - position
            position = end
            if position - reported >= PROGRESS_BYTES:
                reported = position
                yield _progress(progress, offset=position, sent=sent[0])


async def _response(
    call: calls.TunnelledCall, frame: gw.CallUp | None
) -> tuple[pb.PushResponse, gw.CallUp | None]:
    """The Push response and the status frame (None: the agent went away first)."""
    response = pb.PushResponse()
    while frame is not None or (frame := await call.receive()) is not None:
        kind = frame.WhichOneof("kind")
        if kind == "message":
            response = pb.PushResponse.FromString(frame.message)
        elif kind == "status":
            return response, frame
        frame = None
    return response, None


def _progress(template: gw.DeliverProgress, *, offset: int, sent: int) -> gw.DeliverProgress:
    progress = gw.DeliverProgress()
    progress.CopyFrom(template)
    progress.offset = offset
    progress.sent_bytes = sent
    return progress


def _raise_for_status(agent: str, method: str, frame: gw.CallUp) -> None:
    code, details, _trailing = calls.status_of(frame)
    if code == 0:
        return
    name = frames.status_code(code).name
    raise errors.AgentCallFailed(
        f"agent {agent}: {_short(method)} failed ({name}): {details}", status=name
    )


def _short(method: str) -> str:
    return method.rsplit("/", maxsplit=1)[-1]
