"""Tracing setup: which exporter, which service, and one trace id per rollout generation.

Tracing is off by default (`exporter="none"`): spans are then non-recording, yet the trace
context still travels to agents, so operator and agent log lines of one rollout share a trace id
even without a collector. `console` prints one JSON span per line for development; `otlp` sends
to a collector over gRPC (endpoint from the argument or `OTEL_EXPORTER_OTLP_ENDPOINT`).

A rollout is reconciled by many handler invocations, possibly across operator restarts, so its
trace cannot hang off one in-memory root span. Instead the trace id (and a virtual root span id)
are derived from the rollout's uid and generation: every invocation, on any replica, parents its
spans to the same remote root, and a new generation starts a new trace.

Edgewave's spans come from `tracer()`, which follows the provider installed here (or, if none,
OpenTelemetry's global one); `use_provider` swaps it for a block, which is how tests capture
spans in memory without touching the process-global provider.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, TextIO, get_args

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk import resources
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import export

from edgewave_api.errors import PermanentError

Exporter = Literal["none", "console", "otlp"]
EXPORTERS: tuple[str, ...] = get_args(Exporter)

INSTRUMENTATION_NAME = "edgewave"


class TracingConfigError(PermanentError):
    """The tracing options cannot work as given."""


class _State:
    """The provider Edgewave's spans go to; None follows OpenTelemetry's global provider."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.provider: trace.TracerProvider | None = None
        self.owned: sdk_trace.TracerProvider | None = None
        self.tracer: trace.Tracer = trace.get_tracer(INSTRUMENTATION_NAME)


_state = _State()


def tracer() -> trace.Tracer:
    """The tracer every Edgewave span is started from."""
    return _state.tracer


def _select(provider: trace.TracerProvider | None) -> None:
    _state.provider = provider
    _state.tracer = trace.get_tracer(INSTRUMENTATION_NAME, tracer_provider=provider)


def setup_tracing(
    *,
    service_name: str,
    exporter: Exporter = "none",
    endpoint: str | None = None,
    console: TextIO | None = None,
    install_global: bool = True,
) -> sdk_trace.TracerProvider | None:
    """Turn tracing on for this process (once, at start-up); returns the provider, if any.

    `service_name` is `edgewave-operator` or `edgewave-agent`; OTEL_RESOURCE_ATTRIBUTES and
    OTEL_TRACES_SAMPLER are honoured. With `install_global` the provider also becomes
    OpenTelemetry's global one when no other was installed, so third-party instrumentation
    joins the same traces.
    """
    if exporter not in EXPORTERS:
        raise TracingConfigError(
            f"unknown trace exporter {exporter!r}: use one of {', '.join(EXPORTERS)}"
        )
    if endpoint is not None and exporter != "otlp":
        raise TracingConfigError(
            f"a trace endpoint ({endpoint}) only applies to the otlp exporter: "
            "add --trace-exporter=otlp or drop the endpoint"
        )
    with _state.lock:
        _shutdown_owned()
        if exporter == "none":
            _select(None)
            return None
        provider = sdk_trace.TracerProvider(
            resource=resources.Resource.create({resources.SERVICE_NAME: service_name})
        )
        processor: sdk_trace.SpanProcessor
        if exporter == "console":
            processor = export.SimpleSpanProcessor(
                export.ConsoleSpanExporter(
                    service_name=service_name,
                    out=console or sys.stderr,
                    formatter=lambda span: span.to_json(indent=None) + "\n",
                )
            )
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            processor = export.BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))
        provider.add_span_processor(processor)
        _state.owned = provider
        _select(provider)
        if install_global and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(provider)
        return provider


def shutdown_tracing() -> None:
    """Flush and stop the provider `setup_tracing` made (call on orderly exit)."""
    with _state.lock:
        _shutdown_owned()
        _select(None)


def _shutdown_owned() -> None:
    if _state.owned is not None:
        _state.owned.shutdown()
        _state.owned = None


@contextmanager
def use_provider(provider: trace.TracerProvider) -> Iterator[None]:
    """Send Edgewave's spans to `provider` for the duration of the block (tests, benchmarks)."""
    with _state.lock:
        previous = _state.provider
        _select(provider)
    try:
        yield
    finally:
        with _state.lock:
            _select(previous)


def _rollout_ids(uid: str, generation: int) -> tuple[int, int]:
    digest = hashlib.sha256(f"edgewave-rollout/{uid}/{generation}".encode()).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:24], "big") or 1
    return trace_id, span_id


def rollout_root(*, uid: str, generation: int) -> otel_context.Context:
    """A context whose (remote, sampled) parent is the virtual root of this rollout generation."""
    trace_id, span_id = _rollout_ids(uid, generation)
    root = trace.SpanContext(
        trace_id=trace_id,
        span_id=span_id,
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(root))


def rollout_trace_id(*, uid: str, generation: int) -> str:
    """The 32-hex-digit trace id of a rollout generation (for status, events and log searches)."""
    return trace.format_trace_id(_rollout_ids(uid, generation)[0])


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span in hex, or None outside any trace."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return trace.format_trace_id(span_context.trace_id), trace.format_span_id(span_context.span_id)
