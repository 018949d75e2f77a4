"""The spans of a rollout, with the attributes someone debugging a stalled rollout needs.

Operator side: `rollout` (one per reconcile invocation, all under the generation's trace),
`plan`, `compile`, `wave`, `push`, `activate`, `gate`, `rollback`. Agent side, inside the RPC's
server span that `interceptors` opens: `receive` (around a client stream: `receiving`),
`verify`, `load`, `warm_up`. Each is a context
manager that yields the OpenTelemetry span; values learnt inside the block are added with
`annotate(cache_hit=True)` (or `span.set_attribute`). An exception leaving the block marks the
span failed and records the exception. `rollout`, `wave`, `push`, `activate` also bind the scope
(`scope.bind`), so log lines inside name the rollout, wave and agent.

Attribute keys are `edgewave.<field>`, the same for every span, so a query such as
`edgewave.agent = "edge-7"` finds every step that touched an agent.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import contextmanager
from typing import TypeVar

from opentelemetry import trace
from opentelemetry.util import types

from edgewave_api.telemetry import scope, tracing

AttributeValue = str | int | float | bool
T = TypeVar("T")

PREFIX = "edgewave."
ROLLOUT = "edgewave.rollout"
GENERATION = "edgewave.generation"
OPERATION = "edgewave.operation"
TARGETS = "edgewave.targets"
WAVES = "edgewave.waves"
WAVE = "edgewave.wave"
REGION = "edgewave.region"
AGENT = "edgewave.agent"
MODEL = "edgewave.model"
VERSION = "edgewave.version"
DIGEST = "edgewave.digest"
BACKEND = "edgewave.backend"
COMPUTE_CAPABILITY = "edgewave.compute_capability"
CACHE_HIT = "edgewave.cache_hit"
BYTES = "edgewave.bytes"
OFFSET = "edgewave.offset"
RESUMED_OFFSET = "edgewave.resumed_offset"
CHUNKS = "edgewave.chunks"
PASSED = "edgewave.passed"
REASON = "edgewave.reason"


def _attributes(fields: dict[str, AttributeValue | None]) -> dict[str, types.AttributeValue]:
    return {PREFIX + key: value for key, value in fields.items() if value is not None}


def annotate(**fields: AttributeValue | None) -> None:
    """Set `edgewave.<field>` attributes on the current span (None values are skipped)."""
    trace.get_current_span().set_attributes(_attributes(fields))


@contextmanager
def span(
    name: str,
    /,
    *,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    **fields: AttributeValue | None,
) -> Iterator[trace.Span]:
    """A child of the current span named `name`, with `edgewave.<field>` attributes."""
    with tracing.tracer().start_as_current_span(
        name, kind=kind, attributes=_attributes(fields)
    ) as current:
        yield current


@contextmanager
def rollout(
    *,
    namespace: str,
    name: str,
    uid: str,
    generation: int,
    operation: str = "reconcile",
) -> Iterator[trace.Span]:
    """One handler invocation for a rollout; its parent is the generation's virtual root."""
    key = f"{namespace}/{name}"
    with (
        scope.bind(rollout=key),
        tracing.tracer().start_as_current_span(
            "rollout",
            context=tracing.rollout_root(uid=uid, generation=generation),
            attributes=_attributes(
                {"rollout": key, "generation": generation, "operation": operation}
            ),
        ) as current,
    ):
        yield current


@contextmanager
def plan(*, targets: int | None = None, waves: int | None = None) -> Iterator[trace.Span]:
    """Computing targets, build keys and waves."""
    with span("plan", targets=targets, waves=waves) as current:
        yield current


@contextmanager
def compile(
    *,
    model: str,
    version: str,
    backend: str,
    compute_capability: str | None = None,
    cache_hit: bool | None = None,
) -> Iterator[trace.Span]:
    """Producing one engine (or finding it in the cache: annotate `cache_hit`)."""
    with span(
        "compile",
        model=model,
        version=version,
        backend=backend,
        compute_capability=compute_capability,
        cache_hit=cache_hit,
    ) as current:
        yield current


@contextmanager
def wave(*, name: str | int, region: str | None = None) -> Iterator[trace.Span]:
    """One wave (its name, or its index): its pushes, activations and gate."""
    with scope.bind(wave=name), span("wave", wave=name, region=region) as current:
        yield current


@contextmanager
def push(
    *,
    agent: str,
    digest: str,
    size: int,
    resumed_offset: int | None = None,
) -> Iterator[trace.Span]:
    """Sending one artifact to one agent; annotate `resumed_offset` once `Stat` says it."""
    with (
        scope.bind(agent=agent),
        span(
            "push", agent=agent, digest=digest, bytes=size, resumed_offset=resumed_offset
        ) as current,
    ):
        yield current


@contextmanager
def activate(*, agent: str, model: str, version: str, digest: str) -> Iterator[trace.Span]:
    """Asking one agent to switch a model to a version."""
    with (
        scope.bind(agent=agent),
        span("activate", agent=agent, model=model, version=version, digest=digest) as current,
    ):
        yield current


@contextmanager
def gate(*, wave: str | int) -> Iterator[trace.Span]:
    """Evaluating a wave's health gate; annotate `passed` and `reason`."""
    with span("gate", wave=wave) as current:
        yield current


@contextmanager
def rollback(*, reason: str, agent: str | None = None) -> Iterator[trace.Span]:
    """Re-activating the previous version (on one agent, or as a whole)."""
    with span("rollback", reason=reason, agent=agent) as current:
        yield current


@contextmanager
def receive(
    *, digest: str | None = None, offset: int | None = None, size: int | None = None
) -> Iterator[trace.Span]:
    """Agent: receiving a pushed artifact's bytes (annotate what the first chunk tells)."""
    with span("receive", digest=digest, offset=offset, bytes=size) as current:
        yield current


async def receiving(chunks: AsyncIterable[T], *, digest: str | None = None) -> AsyncIterator[T]:
    """Agent: `chunks`, passed through, timed by a `receive` span from the first to the last.

    For a client stream: `async for chunk in spans.receiving(request_iterator): ...`. The
    span is not made current (it would outlive the handler's context if the stream is
    abandoned); it is a child of the span current at the first chunk, the RPC's.
    """
    current = tracing.tracer().start_span("receive", attributes=_attributes({"digest": digest}))
    count = 0
    try:
        async for chunk in chunks:
            count += 1
            yield chunk
    except BaseException as error:
        current.record_exception(error)
        current.set_status(trace.StatusCode.ERROR, type(error).__name__)
        raise
    finally:
        current.set_attribute(CHUNKS, count)
        current.end()


@contextmanager
def verify(*, digest: str, size: int | None = None) -> Iterator[trace.Span]:
    """Agent: checking a received artifact's sha256 and size (or an activation's signature)."""
    with span("verify", digest=digest, bytes=size) as current:
        yield current


@contextmanager
def load(*, model: str, version: str, backend: str) -> Iterator[trace.Span]:
    """Agent: loading an engine with a backend."""
    with span("load", model=model, version=version, backend=backend) as current:
        yield current


@contextmanager
def warm_up(*, model: str, version: str) -> Iterator[trace.Span]:
    """Agent: running warm-up inferences and the health probe before swapping."""
    with span("warm_up", model=model, version=version) as current:
        yield current
