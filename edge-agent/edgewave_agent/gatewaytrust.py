"""Calls that arrive through the gateway carry their caller's identity as metadata.

In gateway mode the agent's AgentService listens on a Unix socket in its data directory
(mode 0600), reachable only by this agent's own tunnel, which puts the certificate the
gateway verified (`edgewave-caller-cert-bin`) on each call. Only there is that metadata
believed: for a call on the Unix socket the servicer sees a context whose `auth_context`
names that certificate, exactly as mTLS on a control port would; calls on any TCP port are
left as they are, whatever metadata they carry. End-to-end authorization (the operator
signing each grant, so a gateway cannot forge one) is issue #14's signed grants.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from edgewave_proto.agent.v1 import wire

CALLER_CERT_KEY = wire.CALLER_CERT_KEY
Context = grpc.aio.ServicerContext[Any, Any]


class _GatewayCallerContext:
    """The servicer context of a tunnelled call, naming the caller the gateway verified."""

    def __init__(self, context: Context, cert_pem: bytes) -> None:
        self._context = context
        self._cert_pem = cert_pem

    def auth_context(self) -> dict[str, list[bytes]]:
        return {
            "x509_pem_cert": [self._cert_pem],
            "transport_security_type": [b"edgewave-gateway"],
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def _caller_cert(context: Context) -> bytes | None:
    if not (context.peer() or "").startswith("unix:"):
        return None
    for key, value in context.invocation_metadata() or ():
        if key == CALLER_CERT_KEY and isinstance(value, bytes) and value:
            return value
    return None


def contextualized(context: Context) -> Context:
    """The context the servicer should see: the gateway's caller on the Unix socket."""
    cert = _caller_cert(context)
    if cert is None:
        return context
    return _GatewayCallerContext(context, cert)  # type: ignore[return-value]


def trusting_gateway(behavior: Callable[..., Any], *, server_streaming: bool) -> Callable[..., Any]:
    """Wrap a servicer method so tunnelled calls see their caller's identity."""
    if server_streaming:

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            async for item in behavior(request, contextualized(context)):
                yield item

        return stream

    async def unary(request: Any, context: Context) -> Any:
        return await behavior(request, contextualized(context))

    return unary
