"""Sliding-window health numbers, driven by a passed-in clock."""

from __future__ import annotations

import pytest

from edgewave_agent import stats


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.5, 0.0),
        ([1.0], 0.95, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0),
        ([*range(1, 21)], 0.95, 19),
    ],
)
def test_percentile(values: list[float], fraction: float, expected: float) -> None:
    assert stats.percentile(sorted(values), fraction) == expected


def test_window_counts_only_recent_requests() -> None:
    window = stats.Window(10.0)
    for second in range(20):
        window.record(now=float(second), latency_seconds=second / 100, ok=second % 4 != 0)
    health = window.snapshot(now=19.0)
    assert health.requests == 11  # seconds 9..19
    assert health.errors == 2  # 12 and 16
    assert health.latency_p50_seconds == 0.14
    assert health.latency_p95_seconds == 0.19
    assert window.snapshot(now=100.0).requests == 0


def test_window_memory_is_bounded() -> None:
    window = stats.Window(1e9, max_samples=5)
    for i in range(100):
        window.record(now=float(i), latency_seconds=0.001, ok=True)
    assert window.snapshot(now=100.0).requests == 5
