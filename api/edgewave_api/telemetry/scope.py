"""Which rollout, wave and agent the current code is working for.

Kept as W3C baggage in the OpenTelemetry context, so one mechanism serves three needs: log lines
read it (`logs`), it follows the task through `await`s like any context variable, and the
default propagator carries it to the agent in gRPC metadata next to `traceparent`, so the
agent's log lines name the rollout and wave too. Values are short identifiers, never secrets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import baggage
from opentelemetry import context as otel_context

ROLLOUT = "edgewave.rollout"
WAVE = "edgewave.wave"
AGENT = "edgewave.agent"


@dataclasses.dataclass(frozen=True)
class Scope:
    """What the current code works for; None where it is not about one."""

    rollout: str | None = None
    wave: str | None = None
    agent: str | None = None


def _get(key: str, ctx: otel_context.Context | None) -> str | None:
    value = baggage.get_baggage(key, ctx)
    return None if value is None else str(value)


def current(ctx: otel_context.Context | None = None) -> Scope:
    """The scope of `ctx` (default: the current context)."""
    return Scope(rollout=_get(ROLLOUT, ctx), wave=_get(WAVE, ctx), agent=_get(AGENT, ctx))


@contextmanager
def bind(
    *,
    rollout: str | None = None,
    wave: int | str | None = None,
    agent: str | None = None,
) -> Iterator[None]:
    """Add the given (non-None) fields to the scope for the block; the others stay as they are.

    Enter and leave the block in the same task (as any `with` inside one coroutine does).
    """
    ctx = otel_context.get_current()
    for key, value in ((ROLLOUT, rollout), (WAVE, wave), (AGENT, agent)):
        if value is not None:
            ctx = baggage.set_baggage(key, str(value), ctx)
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)
