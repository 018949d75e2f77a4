"""The persisted serving state: every model's slots, on disk and in memory.

Exists so the state (versions held, activation history, failures) survives a restart and
never runs behind memory: `commit` writes `state.json` crash-safely (atomic rename) first
and changes memory only after, so a crash never leaves memory ahead of disk. The
transitions themselves are decided in `slots`; this module only keeps their results.

It also keeps the highest grant sequence accepted per model (`edgewave_api.grants`), in the
same file and written the same way, so a replayed grant stays refused after a restart and
after the model is removed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path

from edgewave_agent import errors, files, slots

SEQUENCES_KEY = "grant_sequences"


class Ledger:
    """The models' slots; reads and commits under the serving lock."""

    def __init__(self, path: Path, *, lock: threading.RLock) -> None:
        self._path = path
        self.lock = lock
        self._models: dict[str, slots.ModelSlots] = {}
        self._sequences: dict[str, int] = {}

    def load(self) -> None:
        """Read the persisted state (empty when there is none yet)."""
        self._models, self._sequences = self._read()

    def _read(self) -> tuple[dict[str, slots.ModelSlots], dict[str, int]]:
        try:
            document = json.loads(self._path.read_text())
        except FileNotFoundError:
            return {}, {}
        except ValueError as error:
            raise errors.AgentError(
                f"agent state {self._path} is unreadable ({error}): restore it from a"
                " backup or delete it to start empty"
            ) from None
        sequences = document.get(SEQUENCES_KEY, {})
        if not isinstance(sequences, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in sequences.values()
        ):
            raise errors.AgentError(
                f"agent state {self._path}: {SEQUENCES_KEY} must map model names to integers"
            )
        return slots.from_document(document), {str(k): v for k, v in sequences.items()}

    def _write(self, models: Mapping[str, slots.ModelSlots], sequences: Mapping[str, int]) -> None:
        document = {**slots.to_document(models), SEQUENCES_KEY: dict(sequences)}
        files.atomic_write(self._path, json.dumps(document, indent=2, sort_keys=True).encode())

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
            self._write(models, self._sequences)
            self._models = dict(models)

    def sequence(self, model: str) -> int:
        """The highest grant sequence accepted for `model` (0: none yet)."""
        with self.lock:
            return self._sequences.get(model, 0)

    def sequences(self) -> dict[str, int]:
        with self.lock:
            return dict(self._sequences)

    def accept_sequence(self, model: str, sequence: int) -> None:
        """Persist `sequence` as the highest accepted for `model`, then adopt it."""
        with self.lock:
            sequences = {**self._sequences, model: sequence}
            self._write(self._models, sequences)
            self._sequences = sequences
