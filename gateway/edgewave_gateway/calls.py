"""The gateway's end of one call tunnelled to an agent: open it, send, receive, close.

Used by the relay (a caller's AgentService call passed through as bytes) and by delivery
(the gateway's own Stat and Push from its cache). `open_call` signals the agent over its
session and waits for it to attach a Call stream; frames then flow through the `CallLeg`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from edgewave_gateway import frames, sessions
from edgewave_proto.gateway.v1 import gateway_pb2 as gw


class TooManyCalls(Exception):
    """The agent has as many calls in flight through this gateway as it may."""


class TunnelledCall:
    def __init__(self, *, session: sessions.Session, leg: sessions.CallLeg) -> None:
        self.agent = session.agent
        self._session = session
        self._leg = leg
        self._closed = False

    async def send(self, message: bytes) -> bool:
        """Queue one request message for the agent; False once the agent's side has ended."""
        return await self._put(gw.CallDown(message=message))

    async def half_close(self) -> None:
        await self._put(gw.CallDown(half_close=gw.HalfClose()))

    async def _put(self, frame: gw.CallDown) -> bool:
        leg = self._leg
        if leg.up_ended.is_set():
            return False
        putter = asyncio.ensure_future(leg.down.put(frame))
        ended = asyncio.ensure_future(leg.up_ended.wait())
        try:
            await asyncio.wait((putter, ended), return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            if not putter.done():
                putter.cancel()
        return putter.done() and not putter.cancelled()

    async def receive(self) -> gw.CallUp | None:
        """The next frame from the agent (headers, a message, the status); None: it went away."""
        return await self._leg.next_up()

    def close(self, *, cancelled: bool) -> None:
        """Done with the call; `cancelled` ends the agent's side with CANCELLED."""
        self._leg.finish(cancelled=cancelled)
        if not self._closed:
            self._closed = True
            self._session.calls_in_flight -= 1


async def open_call(
    registry: sessions.Registry,
    *,
    agent: str,
    method: str,
    metadata: Sequence[gw.Metadata] = (),
    timeout_seconds: float | None = None,
    caller_cert_pem: bytes = b"",
    attach_timeout: float,
    max_calls: int,
) -> TunnelledCall:
    """Open `method` on `agent` through its session; SessionGone if it has none,
    TooManyCalls if it has `max_calls` in flight already."""
    session = registry.get(agent)
    if session is None:
        raise sessions.SessionGone(f"agent {agent} has no session with this gateway")
    if session.calls_in_flight >= max_calls:
        raise TooManyCalls(
            f"agent {agent} has {session.calls_in_flight} calls in flight through this"
            " gateway (max_calls_per_agent); retry when some have finished"
        )
    request = gw.OpenCall(
        method=method,
        metadata=list(metadata),
        timeout_seconds=timeout_seconds or 0.0,
        caller_cert_pem=caller_cert_pem,
    )
    session.calls_in_flight += 1
    try:
        leg = await session.open_call(request, attach_timeout=attach_timeout)
    except BaseException:
        session.calls_in_flight -= 1
        raise
    return TunnelledCall(session=session, leg=leg)


def status_of(frame: gw.CallUp) -> tuple[int, str, tuple[tuple[str, frames.MetadataValue], ...]]:
    status = frame.status
    return status.code, status.details, frames.from_frames(status.trailing_metadata)
