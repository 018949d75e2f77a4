"""The operator's AgentService calls, relayed to a named agent through its session.

A generic handler serves every `edgewave.agent.v1.AgentService` method on the gateway's
port. Metadata `edgewave-agent: NAME` picks the agent; the request and response messages
pass through as bytes (never parsed here), and the agent's headers, status code, details
and trailing metadata come back unchanged, so a client cannot tell a relayed call from a
direct one. An agent without a session is UNAVAILABLE with a message naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc

from edgewave_api import identities
from edgewave_gateway import calls, frames, peers, sessions
from edgewave_gateway.settings import GatewayConfig
from edgewave_proto.agent.v1 import agent_pb2

SERVICE = agent_pb2.DESCRIPTOR.services_by_name["AgentService"]
PREFIX = f"/{SERVICE.full_name}/"
METHODS = frozenset(m.name for m in SERVICE.methods)
Context = grpc.aio.ServicerContext[Any, Any]


def _metadata_value(context: Context, key: str) -> str | None:
    for item_key, value in context.invocation_metadata() or ():
        if item_key == key:
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return None


if TYPE_CHECKING:
    _Handler = grpc.GenericRpcHandler[Any, Any]
else:  # not subscriptable at run time
    _Handler = grpc.GenericRpcHandler


class Relay(_Handler):
    def __init__(self, *, config: GatewayConfig, registry: sessions.Registry) -> None:
        self._config = config
        self._registry = registry

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        if not method.startswith(PREFIX):
            return None
        name = method[len(PREFIX) :]
        behavior = functools.partial(self._relay, method, name)
        if name not in METHODS:
            behavior = functools.partial(self._unknown, name)
        return grpc.stream_stream_rpc_method_handler(behavior)

    async def _unknown(
        self, name: str, request_iterator: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[bytes]:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{SERVICE.full_name} has no method {name[:64]!r}: nothing to relay",
        )
        yield b""  # pragma: no cover - abort raises; this makes the function a generator

    async def _relay(
        self, method: str, name: str, request_iterator: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[bytes]:
        identity = await peers.require(
            context, identities.Role.OPERATOR, trust_domain=self._config.tls.trust_domain
        )
        agent = _metadata_value(context, frames.AGENT_KEY)
        if not agent:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"set metadata {frames.AGENT_KEY}: NAME to say which agent {name} is for",
            )
        try:
            metadata = frames.to_frames(context.invocation_metadata())
            call = await calls.open_call(
                self._registry,
                agent=agent,
                method=method,
                metadata=metadata,
                timeout_seconds=context.time_remaining(),
                caller_cert_pem=identity.cert_pem,
                attach_timeout=self._config.attach_timeout_seconds,
                max_calls=self._config.max_calls_per_agent,
            )
        except ValueError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except calls.TooManyCalls as error:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
        except sessions.SessionGone as error:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"gateway {self._config.name}: {error}; it is offline or behind another gateway",
            )
        down = asyncio.create_task(_pump_requests(request_iterator, call))
        completed = False
        try:
            while (frame := await call.receive()) is not None:
                kind = frame.WhichOneof("kind")
                if kind == "headers":
                    await context.send_initial_metadata(frames.from_frames(frame.headers.metadata))
                elif kind == "message":
                    yield frame.message
                elif kind == "status":
                    completed = True
                    code, details, trailing = calls.status_of(frame)
                    if code == 0:
                        context.set_trailing_metadata(trailing)
                        return
                    await context.abort(frames.status_code(code), details, trailing)
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"agent {agent} went away during {name} (its session ended); retry",
            )
        finally:
            down.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await down
            call.close(cancelled=not completed)


async def _pump_requests(requests: AsyncIterator[bytes], call: calls.TunnelledCall) -> None:
    try:
        async for message in requests:
            if not await call.send(message):
                return
    except grpc.RpcError:
        return
    await call.half_close()
