"""One call the gateway asked for, carried between the gateway and the local AgentService.

On an OpenCall signal the agent opens a new Call stream to the gateway (its own HTTP/2
stream on the session's connection, flow-controlled on its own) and a call of the asked
method on its own AgentService over the Unix control socket. Request messages come down,
response headers, messages and the final status go up, all as bytes: nothing is parsed or
re-serialized, so every handler, status code and message is the agent's own. Only
AgentService methods are carried; anything else is answered UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import grpc
import grpc.aio

from edgewave_agent import gatewaytrust
from edgewave_proto.agent.v1 import wire
from edgewave_proto.gateway.v1 import gateway_pb2 as gw

log = logging.getLogger(__name__)
# End of a stream in grpc.aio read() (not in grpc-stubs).
EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]
CALL_METHOD = "/edgewave.gateway.v1.AgentTunnel/Call"
ALLOWED_PREFIX = "/edgewave.agent.v1.AgentService/"
# After the status went up, how long the gateway has to end the call.
CLOSE_WAIT_SECONDS = 30.0
# Tunnelled calls one agent runs at once; more are answered RESOURCE_EXHAUSTED.
MAX_CALLS = 512
_TRANSPORT_KEYS = frozenset({wire.GATEWAY_ROUTE_KEY, gatewaytrust.CALLER_CERT_KEY, "user-agent"})


def _frames(pairs: Any) -> list[gw.Metadata]:
    frames = []
    for key, value in pairs or ():
        if key.startswith((":", "grpc-")) or key in _TRANSPORT_KEYS:
            continue
        if isinstance(value, bytes):
            frames.append(gw.Metadata(key=key, binary=value))
        else:
            frames.append(gw.Metadata(key=key, value=value))
    return frames


def _metadata(request: gw.OpenCall) -> tuple[tuple[str, str | bytes], ...]:
    pairs: list[tuple[str, str | bytes]] = []
    for frame in request.metadata:
        key = frame.key
        if key.startswith((":", "grpc-")) or key in _TRANSPORT_KEYS or key != key.lower():
            continue
        pairs.append((key, frame.binary if key.endswith("-bin") else frame.value))
    if request.caller_cert_pem:
        pairs.append((gatewaytrust.CALLER_CERT_KEY, request.caller_cert_pem))
    return tuple(pairs)


def _status(code: grpc.StatusCode, details: str | None, trailing: Any) -> gw.CallUp:
    return gw.CallUp(
        status=gw.Status(
            code=code.value[0], details=details or "", trailing_metadata=_frames(trailing)
        )
    )


async def serve_call(
    *,
    gateway: grpc.aio.Channel,
    local: grpc.aio.Channel,
    session_id: str,
    request: gw.OpenCall,
    busy: bool = False,
) -> None:
    """Carry one call; never raises (a broken call ends on both sides). `busy`: answer
    RESOURCE_EXHAUSTED without calling the local AgentService."""
    open_up = gateway.stream_stream(
        CALL_METHOD,
        request_serializer=gw.CallUp.SerializeToString,
        response_deserializer=gw.CallDown.FromString,
    )
    up: Any = open_up(None)
    local_call: Any = None
    down: asyncio.Task[None] | None = None
    try:
        await up.write(gw.CallUp(attach=gw.Attach(session_id=session_id, call_id=request.call_id)))
        if busy:
            await up.write(
                _status(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the agent runs {MAX_CALLS} tunnelled calls already; retry later",
                    (),
                )
            )
        elif not request.method.startswith(ALLOWED_PREFIX):
            await up.write(
                _status(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"the gateway tunnel carries only {ALLOWED_PREFIX[1:-1]} calls",
                    (),
                )
            )
        else:
            open_local: Any = local.stream_stream(request.method)  # type: ignore[call-arg]
            local_call = open_local(
                None, metadata=_metadata(request), timeout=request.timeout_seconds or None
            )
            down = asyncio.create_task(_carry_down(up, local_call))
            await up.write(await _carry_up(up, local_call))
        await up.done_writing()
        if down is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(down), CLOSE_WAIT_SECONDS)
    except (grpc.RpcError, asyncio.InvalidStateError) as error:
        log.debug("tunnelled call %d (%s) broke: %s", request.call_id, request.method, error)
    except Exception:
        log.exception("tunnelled call %d (%s) failed", request.call_id, request.method)
    finally:
        if down is not None:
            down.cancel()
        if local_call is not None:
            local_call.cancel()
        up.cancel()


async def _carry_up(up: Any, local_call: Any) -> gw.CallUp:
    """Send the local call's headers and responses up; return its status frame."""
    try:
        headers = await local_call.initial_metadata()
        await up.write(gw.CallUp(headers=gw.Headers(metadata=_frames(headers))))
        while (message := await local_call.read()) is not EOF:
            await up.write(gw.CallUp(message=message))
        return _status(
            await local_call.code(),
            await local_call.details(),
            await local_call.trailing_metadata(),
        )
    except grpc.aio.AioRpcError as error:
        return _status(error.code(), error.details(), error.trailing_metadata())


async def _carry_down(up: Any, local_call: Any) -> None:
    """Pass request messages to the local call until the gateway ends the Call stream."""
    local_open = True
    try:
        while (frame := await up.read()) is not EOF:
            kind = frame.WhichOneof("kind")
            if not local_open:
                continue
            try:
                if kind == "message":
                    await local_call.write(frame.message)
                elif kind == "half_close":
                    await local_call.done_writing()
            except (grpc.RpcError, asyncio.InvalidStateError):
                local_open = False  # the local call ended: its status goes up
    except grpc.RpcError:
        local_call.cancel()  # the gateway ended the call (its caller cancelled, or gone)
