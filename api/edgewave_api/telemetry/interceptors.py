"""Trace context across the operator-agent gRPC boundary (W3C `traceparent` and `baggage`).

Client side: `outgoing_metadata()` for a call's `metadata=`, or `aio_client_interceptors()`
for a whole `grpc.aio` channel. Both only add metadata; nothing wraps the call object, so its
cancellation and errors are the plain ones (the interceptors of opentelemetry-instrumentation-grpc
wrap aio calls and, at the version pinned here, do not propagate cancellation or support
`add_done_callback`). Prefer `outgoing_metadata()` for calls written with `call.write()`:
grpc.aio turns any channel with interceptors into intercepted calls, whose `write()` on a
broken stream raises `InvalidStateError` instead of the call's `AioRpcError`.

Server side: `AioServerInterceptor` (grpc.aio servers) and `ServerInterceptor` (thread-pool
servers) run each RPC that carries a trace context inside a SERVER span whose parent is the
caller's span, with the caller's baggage (rollout, wave) and this server's agent id bound in
the scope, so the agent's own spans and log lines join the operator's trace. Calls without a
trace context (inventory probes, health checks, inference clients) open no span: ten thousand
agents would otherwise send a root span per probe. All four RPC shapes are handled, including aio
servicers that stream with `context.write()` instead of an async generator.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeAlias

import grpc
import grpc.aio
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from edgewave_api.telemetry import scope, tracing

MetadataPairs = tuple[tuple[str, str | bytes], ...]
_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
_RpcScope = Callable[[Any], AbstractContextManager[trace.Span]]


def outgoing_metadata(metadata: Iterable[tuple[str, str | bytes]] | None = None) -> MetadataPairs:
    """`metadata` plus the current trace context and scope, for a call's `metadata=` argument."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return (*(metadata or ()), *carrier.items())


def _with_trace(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*outgoing_metadata(tuple(details.metadata or ())))
    return grpc.aio.ClientCallDetails(
        details.method,
        details.timeout,
        metadata,
        details.credentials,
        details.wait_for_ready,
    )


class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_with_trace(client_call_details), request)


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_with_trace(client_call_details), request)


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(_with_trace(client_call_details), request_iterator)


class _StreamStream(grpc.aio.StreamStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(_with_trace(client_call_details), request_iterator)


def aio_client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Interceptors for `grpc.aio.secure_channel(..., interceptors=...)`."""
    interceptors: list[Any] = [_UnaryUnary(), _UnaryStream(), _StreamUnary(), _StreamStream()]
    return interceptors


def _metadata_dict(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    return {key: value for key, value in metadata or () if isinstance(value, str)}


def _status_code(context: Any) -> grpc.StatusCode | None:
    try:
        code = context.code()
    except (AttributeError, NotImplementedError):
        return None
    return code if isinstance(code, grpc.StatusCode) else None


def _finish(span: trace.Span, *, context: Any, error: BaseException | None) -> None:
    code = _status_code(context)
    if code is None:
        if error is None:
            code = grpc.StatusCode.OK
        elif isinstance(error, asyncio.CancelledError | GeneratorExit):
            code = grpc.StatusCode.CANCELLED
        else:
            code = grpc.StatusCode.UNKNOWN
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code is not grpc.StatusCode.OK:
        span.set_status(trace.StatusCode.ERROR, code.name)


class _Tracer:
    """Builds the per-RPC scope (remote parent, server span, bound agent) and wraps behaviours."""

    def __init__(self, agent: str | None) -> None:
        self.agent = agent

    def rpc_scope(self, details: grpc.HandlerCallDetails) -> _RpcScope:
        method = details.method
        method_text = method.decode() if isinstance(method, bytes) else str(method)
        name = method_text.lstrip("/")
        service, _, rpc = name.rpartition("/")
        carrier = _metadata_dict(details.invocation_metadata)
        agent = self.agent

        @contextmanager
        def rpc_span(context: Any) -> Iterator[trace.Span]:
            parent = propagate.extract(carrier)
            token = otel_context.attach(parent)
            error: BaseException | None = None
            try:
                with scope.bind(agent=agent):
                    if not trace.get_current_span().get_span_context().is_valid:
                        # Not part of a trace (probes, health checks, plain inference
                        # clients): no root span per call, or a fleet floods the collector.
                        yield trace.INVALID_SPAN
                        return
                    with tracing.tracer().start_as_current_span(
                        name,
                        kind=trace.SpanKind.SERVER,
                        attributes={
                            "rpc.system": "grpc",
                            "rpc.service": service,
                            "rpc.method": rpc,
                        },
                        record_exception=True,
                        set_status_on_exception=False,
                    ) as span:
                        try:
                            yield span
                        except BaseException as raised:
                            error = raised
                            raise
                        finally:
                            _finish(span, context=context, error=error)
            finally:
                otel_context.detach(token)

        return rpc_span


def _wrap_unary_response(behavior: Callable[..., Any], rpc_span: _RpcScope) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(behavior):

        async def unary_async(request: Any, context: Any) -> Any:
            with rpc_span(context):
                return await behavior(request, context)

        return unary_async

    def unary_sync(request: Any, context: Any) -> Any:
        with rpc_span(context):
            return behavior(request, context)

    return unary_sync


def _wrap_stream_response(behavior: Callable[..., Any], rpc_span: _RpcScope) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behavior):

        async def stream_async_gen(request: Any, context: Any) -> AsyncIterator[Any]:
            with rpc_span(context):
                async for response in behavior(request, context):
                    yield response

        return stream_async_gen
    if inspect.iscoroutinefunction(behavior):

        async def stream_writer(request: Any, context: Any) -> Any:
            with rpc_span(context):
                return await behavior(request, context)

        return stream_writer

    def stream_sync(request: Any, context: Any) -> Iterator[Any]:
        with rpc_span(context):
            yield from behavior(request, context)

    return stream_sync


_FACTORIES: Mapping[tuple[bool, bool], tuple[str, Callable[..., _Handler]]] = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def _wrap_handler(handler: _Handler, rpc_span: _RpcScope) -> _Handler:
    attribute, factory = _FACTORIES[(handler.request_streaming, handler.response_streaming)]
    behavior = getattr(handler, attribute)
    if behavior is None:
        return handler
    wrap = _wrap_stream_response if handler.response_streaming else _wrap_unary_response
    return factory(
        wrap(behavior, rpc_span),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class AioServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """For `grpc.aio.server(interceptors=[AioServerInterceptor(agent=...)])`."""

    def __init__(self, *, agent: str | None = None) -> None:
        self._tracer = _Tracer(agent)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler:
        # grpc.aio passes None on (unknown method) although its stubs do not say so.
        handler: _Handler | None = await continuation(handler_call_details)
        if handler is None:
            return handler  # type: ignore[return-value]
        return _wrap_handler(handler, self._tracer.rpc_scope(handler_call_details))


class ServerInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """For `grpc.server(executor, interceptors=[ServerInterceptor(agent=...)])`."""

    def __init__(self, *, agent: str | None = None) -> None:
        self._tracer = _Tracer(agent)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], _Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        return _wrap_handler(handler, self._tracer.rpc_scope(handler_call_details))
