"""The persisted serving state: every model's slots, on disk and in memory.

Exists so the state (versions held, activation history, failures) survives a restart and
never runs behind memory: `commit` writes `state.json` crash-safely (atomic rename) first
and changes memory only after, so a crash never leaves memory ahead of disk. The
transitions themselves are decided in `slots`; this module only keeps their results.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path

from edgewave_agent import errors, files, slots


class Ledger:
    """The models' slots; reads and commits under the serving lock."""

    def __init__(self, path: Path, *, lock: threading.RLock) -> None:
        self._path = path
        self.lock = lock
        self._models: dict[str, slots.ModelSlots] = {}

    def load(self) -> None:
        """Read the persisted state (empty when there is none yet)."""
        self._models = self._read()

    def _read(self) -> dict[str, slots.ModelSlots]:
        try:
            document = json.loads(self._path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as error:
            raise errors.AgentError(
                f"agent state {self._path} is unreadable ({error}): restore it from a"
                " backup or delete it to start empty"
            ) from None
        return slots.from_document(document)

    def _write(self, models: Mapping[str, slots.ModelSlots]) -> None:
        data = json.dumps(slots.to_document(models), indent=2, sort_keys=True).encode()
        files.atomic_write(self._path, data)

    def find(self, model: str) -> slots.ModelSlots | None:
        with self.lock:
            return self._models.get(model)

    def get(self, model: str) -> slots.ModelSlots:
        """The slots of `model`; empty ones when the agent holds nothing of it."""
        return self.find(model) or slots.ModelSlots(model=model)

    def names(self) -> list[str]:
        with self.lock:
            return sorted(self._models)

    def snapshot(self) -> dict[str, slots.ModelSlots]:
        with self.lock:
            return dict(self._models)

    def commit(self, model: str, new: slots.ModelSlots) -> None:
        """Persist first, then change memory: a crash never leaves memory ahead of disk."""
        with self.lock:
            self.replace({**self._models, model: new})

    def replace(self, models: Mapping[str, slots.ModelSlots]) -> None:
        """Persist then adopt the whole state (a model removed, versions forgotten)."""
        with self.lock:
            self._write(models)
            self._models = dict(models)
