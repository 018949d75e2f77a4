"""Health gates decide on the numbers, with the clock passed in."""

from __future__ import annotations

import datetime

import pytest

from edgewave_operator.planning import gates

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
S = datetime.timedelta(seconds=1)
GATE = gates.GateSpec(window=60 * S, max_p95_latency_ms=50.0, max_error_rate=0.05, min_samples=100)
Outcome = gates.Outcome
Reason = gates.Reason


def sample(
    agent: str, requests: int, *, errors: int = 0, p95: float | None = 10.0
) -> gates.HealthSample:
    return gates.HealthSample(agent=agent, requests=requests, errors=errors, p95_latency_ms=p95)


@pytest.mark.parametrize(
    ("now", "samples", "deadline", "outcome", "reason"),
    [
        (T0 + 30 * S, [sample("a", 500)], None, Outcome.WAIT, Reason.WINDOW_OPEN),
        (T0 + 60 * S, [sample("a", 60), sample("b", 60)], None, Outcome.PASS, Reason.PASSED),
        (
            T0 + 60 * S,
            [sample("a", 60), sample("b", 60, p95=80.0)],
            None,
            Outcome.FAIL,
            Reason.LATENCY,
        ),
        (
            T0 + 60 * S,
            [sample("a", 100, errors=4), sample("b", 100, errors=8)],
            None,
            Outcome.FAIL,
            Reason.ERROR_RATE,
        ),
        (
            T0 + 60 * S,
            [sample("a", 100, errors=5)],
            None,
            Outcome.PASS,
            Reason.PASSED,
        ),  # 0.05 is not over
        (T0 + 60 * S, [sample("a", 10)], None, Outcome.WAIT, Reason.INSUFFICIENT_SAMPLES),
        (T0 + 60 * S, [sample("a", 10)], T0 + 600 * S, Outcome.WAIT, Reason.INSUFFICIENT_SAMPLES),
        (T0 + 600 * S, [sample("a", 10)], T0 + 600 * S, Outcome.FAIL, Reason.INSUFFICIENT_SAMPLES),
        # An agent with no requests has no meaningful latency: it is not the worst p95.
        (
            T0 + 60 * S,
            [sample("a", 200), sample("b", 0, p95=900.0)],
            None,
            Outcome.PASS,
            Reason.PASSED,
        ),
    ],
)
def test_evaluate(
    *,
    now: datetime.datetime,
    samples: list[gates.HealthSample],
    deadline: datetime.datetime | None,
    outcome: gates.Outcome,
    reason: gates.Reason,
) -> None:
    verdict = gates.evaluate(
        gate=GATE, window_started=T0, now=now, samples=samples, deadline=deadline
    )
    assert (verdict.outcome, verdict.reason) == (outcome, reason)
    if outcome is Outcome.WAIT:
        assert verdict.wait_until is not None and verdict.wait_until > now


def test_failure_messages_carry_the_numbers() -> None:
    verdict = gates.evaluate(
        gate=GATE,
        window_started=T0,
        now=T0 + 60 * S,
        samples=[sample("edge-7", 150, p95=123.4)],
    )
    assert (
        "123.4 ms" in verdict.message and "edge-7" in verdict.message and "50 ms" in verdict.message
    )
    assert verdict.numbers["p95LatencyMs"] == 123.4
    errors = gates.evaluate(
        gate=GATE, window_started=T0, now=T0 + 60 * S, samples=[sample("a", 200, errors=20)]
    )
    assert "0.100" in errors.message and "20 of 200" in errors.message
    assert errors.numbers["errorRate"] == pytest.approx(0.1)


def test_window_end_is_when_to_look_again() -> None:
    verdict = gates.evaluate(gate=GATE, window_started=T0, now=T0 + S, samples=[])
    assert verdict.wait_until == T0 + 60 * S


def test_gate_without_limits_passes_after_window() -> None:
    verdict = gates.evaluate(
        gate=gates.GateSpec(window=2 * S), window_started=T0, now=T0 + 2 * S, samples=[]
    )
    assert verdict.outcome is Outcome.PASS
