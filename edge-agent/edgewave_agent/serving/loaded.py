"""The model versions loaded in memory, and closing them.

Exists so every loaded model (an engine holding host or GPU memory) has one owner that
closes it exactly once, when `slots` no longer keeps it loaded, when its model is
removed, or when the agent stops. Handles are taken out under the serving lock and closed
outside it, so a slow close never blocks inference on other models.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Set
from dataclasses import dataclass

from edgewave_agent import slots
from edgewave_agent.backends import LoadedModel


@dataclass
class Loaded:
    ref: slots.VersionRef
    model: LoadedModel


def _close(items: Iterable[Loaded]) -> None:
    for item in items:
        item.model.close()


class LoadedVersions:
    """Loaded models by (model, version)."""

    def __init__(self, *, lock: threading.RLock) -> None:
        self._lock = lock
        self._loaded: dict[tuple[str, str], Loaded] = {}

    def get(self, model: str, version: str) -> Loaded | None:
        with self._lock:
            return self._loaded.get((model, version))

    def has(self, model: str, version: str) -> bool:
        with self._lock:
            return (model, version) in self._loaded

    def put(self, model: str, loaded: Loaded) -> None:
        with self._lock:
            self._loaded[(model, loaded.ref.version)] = loaded

    def keep_only(self, model: str, versions: Set[str]) -> None:
        """Close the loaded versions of `model` not in `versions`."""
        with self._lock:
            drop = [k for k in self._loaded if k[0] == model and k[1] not in versions]
            unloaded = [self._loaded.pop(k) for k in drop]
        _close(unloaded)

    def drop_model(self, model: str) -> None:
        """Close every loaded version of `model`."""
        self.keep_only(model, frozenset())

    def close(self) -> None:
        with self._lock:
            loaded = list(self._loaded.values())
            self._loaded.clear()
        _close(loaded)
