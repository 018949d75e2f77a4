"""What a rollout remembers between reconciles (persisted in its status). Pure data.

Everything else the planner needs is observed afresh (the fleet, the agents' models), so
this is deliberately small: which revision it is about, the phase, each wave's state with
its timestamps, the agents whose activation failed, and why the rollout failed. A
restarted operator reads it back from `status` and continues from the same point.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum


class Phase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    SUCCEEDED = "Succeeded"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        """No further update of this revision: only a spec change moves it on."""
        return self in (Phase.ROLLED_BACK, Phase.FAILED)

    @property
    def active(self) -> bool:
        """Work of this revision is under way (a new revision supersedes it)."""
        return self in (Phase.PROGRESSING, Phase.PAUSED, Phase.ROLLING_BACK)


class WaveState(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    VERIFYING = "Verifying"
    PASSED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class GateResult:
    """What a wave's gate measured, and whether it passed (None: still evaluating)."""

    samples: int = 0
    p95_latency_ms: float | None = None
    error_rate: float | None = None
    passed: bool | None = None


@dataclass(frozen=True, slots=True)
class WaveProgress:
    name: str
    state: WaveState = WaveState.PENDING
    started_at: datetime.datetime | None = None
    verifying_since: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    failed_agents: tuple[str, ...] = ()
    failure_reasons: tuple[tuple[str, str], ...] = ()
    """(agent, why its activation failed, in the agent's words), for the failure message."""
    offline_agents: tuple[str, ...] = ()
    """Agents counted against `maxFailed` for staying offline past the unreachable timeout
    (derived again each turn, never sticky: one that reconnects leaves it)."""
    message: str = ""
    gate: GateResult | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """Why the rollout stopped, with the numbers it was decided on."""

    reason: str
    message: str
    at: datetime.datetime
    wave: str | None = None
    numbers: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Progress:
    revision: str = ""
    version: str = ""
    previous_version: str | None = None
    phase: Phase = Phase.PENDING
    waves: tuple[WaveProgress, ...] = ()
    failure: Failure | None = None
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None

    def wave(self, name: str) -> WaveProgress:
        return next((w for w in self.waves if w.name == name), WaveProgress(name=name))

    def with_wave(self, updated: WaveProgress) -> Progress:
        waves = tuple(updated if w.name == updated.name else w for w in self.waves)
        if all(w.name != updated.name for w in self.waves):
            waves += (updated,)
        return replace(self, waves=waves)

    def aligned(self, names: Sequence[str]) -> Progress:
        """Wave records for exactly `names`, in that order (new waves start pending)."""
        return replace(self, waves=tuple(self.wave(name) for name in names))
