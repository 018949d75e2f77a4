"""Trace context crosses a real gRPC connection: server spans join the caller's trace.

A small raw-bytes service on port 0 exercises every RPC shape (unary, client streaming,
server streaming as async generator and as `context.write()`, bidirectional), on a grpc.aio
server and on a thread-pool server, with the client's interceptors or explicit metadata.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import grpc.aio
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from edgewave_api.telemetry import interceptors, logs, spans, tracing

pytestmark = pytest.mark.integration

SERVICE = "edgewave.test.v1.Probe"
AGENT = "edge-under-test"
UID = "5f0c7a52-0000-4000-8000-000000000001"


class Recorder(logging.Handler):
    """Keeps the records logged inside servicers, with the context fields stamped on."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(logs.ContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


log = logging.getLogger("edgewave.test.servicer")


class Probe:
    """What the aio servicer saw of an upload: its first chunk, the end of its stream."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.ended = asyncio.Event()
        self.received = 0


def _aio_handlers(probe: Probe) -> grpc.GenericRpcHandler[Any, Any]:
    async def unary(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        with spans.verify(digest="sha256:unary", size=len(request)):
            log.info("verified")
        return request

    async def upload(request_iterator: AsyncIterator[bytes], context: Any) -> bytes:
        total = 0
        with spans.receive(digest="sha256:upload", offset=0):
            async for chunk in request_iterator:
                total += len(chunk)
                probe.started.set()
        probe.received = total
        probe.ended.set()
        return str(total).encode()

    async def watch(request: bytes, context: Any) -> AsyncIterator[bytes]:
        for index in range(3):
            with spans.span("tick", offset=index):
                yield b"%d" % index

    async def watch_writer(request: bytes, context: Any) -> None:
        for index in range(2):
            with spans.span("tick", offset=index):
                await context.write(b"%d" % index)

    async def chat(request_iterator: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for message in request_iterator:
            with spans.span("echo"):
                yield message

    async def fail(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "engine does not fit this GPU")
        raise AssertionError("abort returned")

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Upload": grpc.stream_unary_rpc_method_handler(upload),
            "Watch": grpc.unary_stream_rpc_method_handler(watch),
            "WatchWriter": grpc.unary_stream_rpc_method_handler(watch_writer),
            "Chat": grpc.stream_stream_rpc_method_handler(chat),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
        },
    )


def _sync_handlers() -> grpc.GenericRpcHandler[Any, Any]:
    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        with spans.verify(digest="sha256:unary", size=len(request)):
            log.info("verified")
        return request

    def upload(request_iterator: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        with spans.receive(digest="sha256:upload", offset=0):
            total = sum(len(chunk) for chunk in request_iterator)
        return str(total).encode()

    def watch(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for index in range(3):
            with spans.span("tick", offset=index):
                yield b"%d" % index

    def chat(request_iterator: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for message in request_iterator:
            with spans.span("echo"):
                yield message

    def fail(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "engine does not fit this GPU")

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Upload": grpc.stream_unary_rpc_method_handler(upload),
            "Watch": grpc.unary_stream_rpc_method_handler(watch),
            "Chat": grpc.stream_stream_rpc_method_handler(chat),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
        },
    )


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with tracing.use_provider(provider):
        yield memory
    provider.shutdown()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    handler = Recorder()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield handler
    log.removeHandler(handler)


def _one(finished: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    matching = [span for span in finished if span.name == name]
    assert len(matching) == 1, f"{name}: {[span.name for span in finished]}"
    return matching[0]


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def _with_aio_server(use: Callable[[str], Any], probe: Probe | None = None) -> Any:
    server = grpc.aio.server(interceptors=[interceptors.AioServerInterceptor(agent=AGENT)])
    server.add_generic_rpc_handlers((_aio_handlers(probe or Probe()),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        return await use(f"127.0.0.1:{port}")
    finally:
        await server.stop(grace=None)


def _rpc(channel: grpc.aio.Channel, shape: str, name: str) -> Any:
    """A raw-bytes multi-callable of the probe service."""
    method = getattr(channel, shape)
    return method(f"/{SERVICE}/{name}", request_serializer=None, response_deserializer=None)


def _channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, interceptors=interceptors.aio_client_interceptors())


async def _rollout_calls(target: str) -> None:
    async with _channel(target) as channel:
        with (
            spans.rollout(namespace="prod", name="detector", uid=UID, generation=3),
            spans.wave(name=1, region="eu-west"),
        ):
            with spans.push(agent=AGENT, digest="sha256:upload", size=6):
                reply = await _rpc(channel, "stream_unary", "Upload")(iter([b"abc", b"def"]))
                assert reply == b"6"
            with spans.activate(agent=AGENT, model="m", version="2", digest="sha256:u"):
                assert await _rpc(channel, "unary_unary", "Unary")(b"go") == b"go"


@pytest.mark.parametrize("server_kind", ["aio", "sync"])
def test_agent_spans_join_the_rollout_trace(
    server_kind: str, exporter: InMemorySpanExporter, recorder: Recorder
) -> None:
    if server_kind == "aio":
        asyncio.run(_with_aio_server(_rollout_calls))
    else:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4),
            interceptors=[interceptors.ServerInterceptor(agent=AGENT)],
        )
        server.add_generic_rpc_handlers((_sync_handlers(),))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            asyncio.run(_rollout_calls(f"127.0.0.1:{port}"))
        finally:
            server.stop(grace=None)

    finished = exporter.get_finished_spans()
    rollout = _one(finished, "rollout")
    wave = _one(finished, "wave")
    push = _one(finished, "push")
    activate = _one(finished, "activate")
    upload = _one(finished, f"{SERVICE}/Upload")
    unary = _one(finished, f"{SERVICE}/Unary")
    receive = _one(finished, "receive")
    verify = _one(finished, "verify")

    trace_id = rollout.context.trace_id
    assert f"{trace_id:032x}" == tracing.rollout_trace_id(uid=UID, generation=3)
    assert {span.context.trace_id for span in finished} == {trace_id}
    # The tree: rollout > wave > push > Upload (agent) > receive, activate > Unary > verify.
    assert _parent_id(wave) == rollout.context.span_id
    assert _parent_id(push) == wave.context.span_id
    assert _parent_id(activate) == wave.context.span_id
    assert _parent_id(upload) == push.context.span_id
    assert _parent_id(receive) == upload.context.span_id
    assert _parent_id(unary) == activate.context.span_id
    assert _parent_id(verify) == unary.context.span_id
    assert upload.kind is SpanKind.SERVER
    assert upload.parent is not None and upload.parent.is_remote
    assert dict(upload.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": SERVICE,
        "rpc.method": "Upload",
        "rpc.grpc.status_code": 0,
    }
    assert (push.attributes or {})[spans.AGENT] == AGENT
    assert (push.attributes or {})[spans.BYTES] == 6

    # The servicer's log line names the rollout and wave (baggage) and this agent.
    [record] = [r for r in recorder.records if r.getMessage() == "verified"]
    assert record.__dict__["rollout"] == "prod/detector"
    assert record.__dict__["wave"] == "1"
    assert record.__dict__["agent"] == AGENT
    assert record.__dict__["trace_id"] == f"{trace_id:032x}"
    assert record.__dict__["span_id"] == f"{verify.context.span_id:016x}"


async def _streaming_calls(target: str) -> list[bytes]:
    received: list[bytes] = []
    async with grpc.aio.insecure_channel(target) as channel:
        with spans.span("caller"):
            metadata = interceptors.outgoing_metadata()
            async for message in _rpc(channel, "unary_stream", "Watch")(b"", metadata=metadata):
                received.append(message)
            writer = _rpc(channel, "unary_stream", "WatchWriter")(b"", metadata=metadata)
            async for message in writer:
                received.append(message)

            async def requests() -> AsyncIterator[bytes]:
                for message in (b"x", b"y"):
                    yield message

            chat = _rpc(channel, "stream_stream", "Chat")(requests(), metadata=metadata)
            async for message in chat:
                received.append(message)
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await _rpc(channel, "unary_unary", "Fail")(b"", metadata=metadata)
            assert failure.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    return received


def test_streaming_shapes_and_errors_without_client_interceptors(
    exporter: InMemorySpanExporter,
) -> None:
    received = asyncio.run(_with_aio_server(_streaming_calls))
    assert received == [b"0", b"1", b"2", b"0", b"1", b"x", b"y"]

    finished = exporter.get_finished_spans()
    caller = _one(finished, "caller")
    servers = {span.name: span for span in finished if span.kind is SpanKind.SERVER}
    assert set(servers) == {f"{SERVICE}/{rpc}" for rpc in ("Watch", "WatchWriter", "Chat", "Fail")}
    for server_span in servers.values():
        assert server_span.context.trace_id == caller.context.trace_id
        assert _parent_id(server_span) == caller.context.span_id
    children = {
        name: sorted(
            _parent_id(span) == servers[f"{SERVICE}/{rpc}"].context.span_id
            for span in finished
            if span.name == name and span.kind is SpanKind.INTERNAL
        )
        for name, rpc in (("tick", "Watch"), ("echo", "Chat"))
    }
    assert children == {"tick": [False, False, True, True, True], "echo": [True, True]}
    fail = servers[f"{SERVICE}/Fail"]
    assert fail.status.status_code is StatusCode.ERROR
    assert (fail.attributes or {})["rpc.grpc.status_code"] == (
        grpc.StatusCode.FAILED_PRECONDITION.value[0]
    )


@pytest.mark.parametrize("traced", [True, False])
def test_client_cancellation_passes_through(traced: bool, exporter: InMemorySpanExporter) -> None:
    """A cancelled push ends the agent's request stream exactly as it does untraced."""
    probe = Probe()

    async def upload_and_cancel(target: str) -> None:
        release = asyncio.Event()

        async def chunks() -> AsyncIterator[bytes]:
            yield b"first"
            await release.wait()

        chosen = interceptors.aio_client_interceptors() if traced else None
        async with grpc.aio.insecure_channel(target, interceptors=chosen) as channel:
            with spans.span("caller"):
                call = _rpc(channel, "stream_unary", "Upload")(chunks())
                await asyncio.wait_for(probe.started.wait(), timeout=10)
                call.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await call
                await asyncio.wait_for(probe.ended.wait(), timeout=10)

    asyncio.run(_with_aio_server(upload_and_cancel, probe))
    assert probe.received == len(b"first")
    finished = exporter.get_finished_spans()
    caller = _one(finished, "caller")
    receive = _one(finished, "receive")
    # Untraced calls open no server span; the servicer's own span is then a root.
    assert len([span for span in finished if span.kind is SpanKind.SERVER]) == int(traced)
    assert (receive.context.trace_id == caller.context.trace_id) is traced
