"""Pure sliding-window health numbers per model version: requests, errors, p50/p95 latency.

The operator's health gates read these through WatchStatus. Time is passed in, so the
window is tested without sleeping. Samples beyond `max_samples` are dropped oldest first,
which bounds memory on a busy agent (percentiles then cover the most recent samples).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Health:
    window_seconds: float
    requests: int
    errors: int
    latency_p50_seconds: float
    latency_p95_seconds: float


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


class Window:
    """Request outcomes of the last `window_seconds`; thread-safe."""

    def __init__(self, window_seconds: float, *, max_samples: int = 10_000) -> None:
        self.window_seconds = window_seconds
        self._samples: deque[tuple[float, float, bool]] = deque(maxlen=max_samples)
        self._lock = threading.Lock()

    def record(self, *, now: float, latency_seconds: float, ok: bool) -> None:
        with self._lock:
            self._samples.append((now, latency_seconds, ok))

    def snapshot(self, now: float) -> Health:
        horizon = now - self.window_seconds
        with self._lock:
            while self._samples and self._samples[0][0] < horizon:
                self._samples.popleft()
            samples = list(self._samples)
        latencies = sorted(latency for _, latency, _ in samples)
        return Health(
            window_seconds=self.window_seconds,
            requests=len(samples),
            errors=sum(1 for _, _, ok in samples if not ok),
            latency_p50_seconds=percentile(latencies, 0.50),
            latency_p95_seconds=percentile(latencies, 0.95),
        )
