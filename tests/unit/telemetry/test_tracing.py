"""Tracing setup, rollout trace ids, and the span tree of a rollout (in memory, no network)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from edgewave_api.telemetry import interceptors, scope, spans, tracing

UID = "0b6f3a8e-1111-4222-8333-444455556666"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with tracing.use_provider(provider):
        yield memory
    provider.shutdown()


def _by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    named = {span.name: span for span in finished}
    assert len(named) == len(finished), [span.name for span in finished]
    return named


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ((UID, 1), (UID, 1), True),
        ((UID, 1), (UID, 2), False),
        ((UID, 1), ("another-uid", 1), False),
    ],
)
def test_rollout_trace_id_is_a_function_of_uid_and_generation(
    first: tuple[str, int], second: tuple[str, int], same: bool
) -> None:
    one = tracing.rollout_trace_id(uid=first[0], generation=first[1])
    two = tracing.rollout_trace_id(uid=second[0], generation=second[1])
    assert len(one) == 32 and int(one, 16) != 0
    assert (one == two) is same


def test_rollout_span_tree_and_attributes(exporter: InMemorySpanExporter) -> None:
    # Two reconcile invocations of one generation, as after an operator restart.
    with spans.rollout(namespace="prod", name="detector", uid=UID, generation=4):
        with spans.plan(targets=6, waves=3):
            pass
        with spans.compile(model="detector", version="2.0", backend="tensorrt_rtx") as build:
            spans.annotate(cache_hit=False, compute_capability="8.9")
            assert build.is_recording()
    with (
        spans.rollout(namespace="prod", name="detector", uid=UID, generation=4, operation="wave"),
        spans.wave(name="eu", region="eu-west"),
    ):
        with spans.push(agent="edge-3", digest="sha256:ab", size=1024):
            spans.annotate(resumed_offset=512)
        with spans.activate(agent="edge-3", model="detector", version="2.0", digest="d"):
            pass
        with spans.gate(wave="eu"):
            spans.annotate(passed=False, reason="p95 latency 41ms > 30ms")
        with spans.rollback(reason="latency"):
            pass

    finished = exporter.get_finished_spans()
    rollouts = [span for span in finished if span.name == "rollout"]
    assert len(rollouts) == 2
    trace_id = int(tracing.rollout_trace_id(uid=UID, generation=4), 16)
    assert {span.context.trace_id for span in finished} == {trace_id}
    # Both invocations hang off the same virtual root, not off each other.
    assert len({_parent(span) for span in rollouts}) == 1
    assert all(span.parent is not None and span.parent.is_remote for span in rollouts)

    rest = _by_name(tuple(span for span in finished if span.name != "rollout"))
    first, second = sorted(rollouts, key=lambda span: span.start_time or 0)
    assert _parent(rest["plan"]) == first.context.span_id
    assert _parent(rest["compile"]) == first.context.span_id
    assert _parent(rest["wave"]) == second.context.span_id
    for step in ("push", "activate", "gate", "rollback"):
        assert _parent(rest[step]) == rest["wave"].context.span_id, step

    def attributes(name: str) -> dict[str, object]:
        return dict(rest[name].attributes or {})

    assert dict(second.attributes or {}) == {
        spans.ROLLOUT: "prod/detector",
        spans.GENERATION: 4,
        spans.OPERATION: "wave",
    }
    assert attributes("plan") == {spans.TARGETS: 6, spans.WAVES: 3}
    assert attributes("compile") == {
        spans.MODEL: "detector",
        spans.VERSION: "2.0",
        spans.BACKEND: "tensorrt_rtx",
        spans.CACHE_HIT: False,
        spans.COMPUTE_CAPABILITY: "8.9",
    }
    assert attributes("wave") == {spans.WAVE: "eu", spans.REGION: "eu-west"}
    assert attributes("push") == {
        spans.AGENT: "edge-3",
        spans.DIGEST: "sha256:ab",
        spans.BYTES: 1024,
        spans.RESUMED_OFFSET: 512,
    }
    assert attributes("gate") == {
        spans.WAVE: "eu",
        spans.PASSED: False,
        spans.REASON: "p95 latency 41ms > 30ms",
    }


def test_agent_side_spans(exporter: InMemorySpanExporter) -> None:
    with spans.span("edgewave.agent.v1.Agent/Activate", kind=trace.SpanKind.SERVER):
        with spans.receive(digest="sha256:cd", offset=4096, size=8192):
            pass
        with spans.verify(digest="sha256:cd", size=8192):
            pass
        with spans.load(model="m", version="3", backend="onnxruntime"):
            pass
        with spans.warm_up(model="m", version="3"):
            pass
    named = _by_name(exporter.get_finished_spans())
    server = named.pop("edgewave.agent.v1.Agent/Activate")
    assert sorted(named) == ["load", "receive", "verify", "warm_up"]
    assert all(_parent(span) == server.context.span_id for span in named.values())
    assert dict(named["receive"].attributes or {}) == {
        spans.DIGEST: "sha256:cd",
        spans.OFFSET: 4096,
        spans.BYTES: 8192,
    }


def test_an_exception_marks_the_span_failed(exporter: InMemorySpanExporter) -> None:
    with (
        pytest.raises(RuntimeError, match="engine invalid"),
        spans.load(model="m", version="1", backend="tensorrt"),
    ):
        raise RuntimeError("engine invalid")
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


def test_scope_follows_the_span_helpers(exporter: InMemorySpanExporter) -> None:
    assert scope.current() == scope.Scope()
    with spans.rollout(namespace="ns", name="r", uid=UID, generation=1), spans.wave(name=3):
        with spans.push(agent="edge-9", digest="d", size=1):
            assert scope.current() == scope.Scope(rollout="ns/r", wave="3", agent="edge-9")
        assert scope.current() == scope.Scope(rollout="ns/r", wave="3")
    assert scope.current() == scope.Scope()


def test_with_tracing_off_the_rollout_trace_id_still_travels() -> None:
    with (
        tracing.use_provider(trace.NoOpTracerProvider()),
        spans.rollout(namespace="ns", name="r", uid=UID, generation=7),
        spans.wave(name=1),
    ):
        metadata = dict(interceptors.outgoing_metadata([("x-request", "1")]))
        ids = tracing.current_ids()
    expected = tracing.rollout_trace_id(uid=UID, generation=7)
    assert metadata["x-request"] == "1"
    version, trace_id, _span_id, flags = str(metadata["traceparent"]).split("-")
    assert (version, trace_id, flags) == ("00", expected, "01")
    assert ids is not None and ids[0] == expected
    assert "edgewave.rollout=ns/r" in str(metadata["baggage"]).replace("%2F", "/")
    assert tracing.current_ids() is None


def test_console_exporter_prints_one_json_span_per_line() -> None:
    out = io.StringIO()
    provider = tracing.setup_tracing(
        service_name="edgewave-agent", exporter="console", console=out, install_global=False
    )
    try:
        assert provider is not None
        with spans.verify(digest="sha256:ef"):
            pass
    finally:
        tracing.shutdown_tracing()
    [line] = out.getvalue().splitlines()
    printed = json.loads(line)
    assert printed["name"] == "verify"
    assert printed["resource"]["attributes"]["service.name"] == "edgewave-agent"
    assert printed["attributes"] == {spans.DIGEST: "sha256:ef"}


def test_otlp_exporter_is_configured_with_the_endpoint() -> None:
    provider = tracing.setup_tracing(
        service_name="edgewave-operator",
        exporter="otlp",
        endpoint="http://127.0.0.1:4317",
        install_global=False,
    )
    try:
        assert provider is not None
        assert provider.resource.attributes["service.name"] == "edgewave-operator"
        assert tracing.tracer() is not trace.get_tracer("edgewave")
    finally:
        tracing.shutdown_tracing()


def test_none_exporter_turns_tracing_off_again() -> None:
    out = io.StringIO()
    tracing.setup_tracing(
        service_name="edgewave-operator", exporter="console", console=out, install_global=False
    )
    assert tracing.setup_tracing(service_name="edgewave-operator", install_global=False) is None
    with spans.plan():
        pass
    assert out.getvalue() == ""


@pytest.mark.parametrize(
    ("exporter", "endpoint", "message"),
    [
        ("zipkin", None, "unknown trace exporter 'zipkin': use one of none, console, otlp"),
        ("console", "http://c:4317", "only applies to the otlp exporter"),
    ],
)
def test_bad_tracing_options_say_what_to_do(
    exporter: str, endpoint: str | None, message: str
) -> None:
    with pytest.raises(tracing.TracingConfigError, match=message):
        tracing.setup_tracing(
            service_name="x",
            exporter=exporter,  # type: ignore[arg-type]
            endpoint=endpoint,
            install_global=False,
        )


def test_receiving_times_a_client_stream(exporter: InMemorySpanExporter) -> None:
    async def chunks(fail: bool) -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"
        if fail:
            raise ConnectionResetError("stream broken")

    async def consume(fail: bool) -> int:
        count = 0
        with spans.span("edgewave.agent.v1.AgentService/Push"):
            async for _ in spans.receiving(chunks(fail), digest="sha256:ab"):
                count += 1
        return count

    assert asyncio.run(consume(False)) == 2
    with pytest.raises(ConnectionResetError):
        asyncio.run(consume(True))
    finished = exporter.get_finished_spans()
    receives = [span for span in finished if span.name == "receive"]
    servers = [span for span in finished if span.name != "receive"]
    assert [dict(span.attributes or {}) for span in receives] == [
        {spans.DIGEST: "sha256:ab", spans.CHUNKS: 2}
    ] * 2
    assert [span.status.status_code for span in receives] == [StatusCode.UNSET, StatusCode.ERROR]
    assert [_parent(span) for span in receives] == [span.context.span_id for span in servers]
