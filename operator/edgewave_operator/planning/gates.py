"""Health gates: does a wave's health over its gate window let the rollout go on? Pure.

The operator gathers per-agent health over the window (requests, errors and p95 latency
of the new version, from the agents' `WatchStatus` streams) and passes it in with the
clock. A gate is evaluated when its window has elapsed: it fails on the worst agent's p95
latency over the limit or on the wave's error rate over the limit; with fewer samples
than `min_samples` it waits for more until the deadline, then fails. Every verdict
carries the numbers it was decided on, for conditions and events.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    PASS = "Pass"
    FAIL = "Fail"
    WAIT = "Wait"


class Reason(StrEnum):
    PASSED = "HealthGatePassed"
    WINDOW_OPEN = "GateWindowOpen"
    INSUFFICIENT_SAMPLES = "InsufficientSamples"
    LATENCY = "LatencyTooHigh"
    ERROR_RATE = "ErrorRateTooHigh"


@dataclass(frozen=True, slots=True)
class GateSpec:
    """`spec.strategy.healthGate`; `None` limits are not checked."""

    window: datetime.timedelta = datetime.timedelta(seconds=60)
    max_p95_latency_ms: float | None = None
    max_error_rate: float | None = None
    min_samples: int = 0


@dataclass(frozen=True, slots=True)
class HealthSample:
    """One agent's health for the new version over the gate window."""

    agent: str
    requests: int = 0
    errors: int = 0
    p95_latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reason: Reason
    message: str
    wait_until: datetime.datetime | None = None
    numbers: Mapping[str, float] = field(default_factory=dict)


def evaluate(
    *,
    gate: GateSpec,
    window_started: datetime.datetime,
    now: datetime.datetime,
    samples: Sequence[HealthSample],
    deadline: datetime.datetime | None = None,
) -> Verdict:
    """The gate's verdict at `now` for a window that started at `window_started`."""
    window_end = window_started + gate.window
    if now < window_end:
        return Verdict(
            outcome=Outcome.WAIT,
            reason=Reason.WINDOW_OPEN,
            message=f"gate window open until {window_end.isoformat()}",
            wait_until=window_end,
        )
    requests = sum(sample.requests for sample in samples)
    errors = sum(sample.errors for sample in samples)
    numbers: dict[str, float] = {"requests": requests, "errors": errors}
    measured = [s for s in samples if s.p95_latency_ms is not None and s.requests > 0]
    worst = max(measured, key=lambda s: s.p95_latency_ms or 0.0, default=None)
    if worst is not None and worst.p95_latency_ms is not None:
        numbers["p95LatencyMs"] = worst.p95_latency_ms
    if requests:
        numbers["errorRate"] = errors / requests
    if (
        gate.max_p95_latency_ms is not None
        and worst is not None
        and worst.p95_latency_ms is not None
        and worst.p95_latency_ms > gate.max_p95_latency_ms
    ):
        return Verdict(
            outcome=Outcome.FAIL,
            reason=Reason.LATENCY,
            message=(
                f"p95 latency {worst.p95_latency_ms:.1f} ms on agent {worst.agent} exceeds "
                f"the gate's {gate.max_p95_latency_ms:g} ms"
            ),
            numbers=numbers,
        )
    if gate.max_error_rate is not None and requests and errors / requests > gate.max_error_rate:
        return Verdict(
            outcome=Outcome.FAIL,
            reason=Reason.ERROR_RATE,
            message=(
                f"error rate {errors / requests:.3f} ({errors} of {requests} requests) "
                f"exceeds the gate's {gate.max_error_rate:g}"
            ),
            numbers=numbers,
        )
    if requests < gate.min_samples:
        if deadline is not None and now >= deadline:
            return Verdict(
                outcome=Outcome.FAIL,
                reason=Reason.INSUFFICIENT_SAMPLES,
                message=(
                    f"only {requests} requests reached the new version by the progress "
                    f"deadline; the gate needs {gate.min_samples} (send traffic or lower "
                    "healthGate.minSamples)"
                ),
                numbers=numbers,
            )
        return Verdict(
            outcome=Outcome.WAIT,
            reason=Reason.INSUFFICIENT_SAMPLES,
            message=f"{requests} of {gate.min_samples} samples so far",
            wait_until=now + gate.window if deadline is None else min(deadline, now + gate.window),
            numbers=numbers,
        )
    parts = [f"{requests} requests"]
    if "errorRate" in numbers:
        parts.append(f"error rate {numbers['errorRate']:.3f}")
    if "p95LatencyMs" in numbers:
        parts.append(f"worst p95 {numbers['p95LatencyMs']:.1f} ms")
    return Verdict(
        outcome=Outcome.PASS,
        reason=Reason.PASSED,
        message="health gate passed: " + ", ".join(parts),
        numbers=numbers,
    )
