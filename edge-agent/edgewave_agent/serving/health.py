"""Health windows: recent requests, errors and latencies per model version.

Exists because the operator's wave gates read these numbers (WatchStatus, Describe):
inference records into them, views read snapshots. One window per (model, version), made
on first use, for the configured window length.
"""

from __future__ import annotations

import threading

from edgewave_agent import stats


class HealthWindows:
    def __init__(self, window_seconds: float, *, lock: threading.RLock) -> None:
        self._seconds = window_seconds
        self._lock = lock
        self._windows: dict[tuple[str, str], stats.Window] = {}

    def window(self, model: str, version: str) -> stats.Window:
        key = (model, version)
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                window = stats.Window(self._seconds)
                self._windows[key] = window
            return window

    def snapshot(self, model: str, version: str, *, now: float) -> stats.Health:
        return self.window(model, version).snapshot(now)

    def empty(self) -> stats.Health:
        """The health of a model that serves no version."""
        return stats.Health(self._seconds, 0, 0, 0.0, 0.0)
