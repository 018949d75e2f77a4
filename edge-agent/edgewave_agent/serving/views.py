"""What the agent reports about a model: its versions, their states and health.

Exists so Describe, WatchStatus and the activation replies read one view, built from the
committed slots and the health windows at one moment. The servicer translates it to
protobuf; nothing here knows the wire.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgewave_agent import owners, slots, stats
from edgewave_agent.serving.health import HealthWindows
from edgewave_agent.serving.ledger import Ledger
from edgewave_proto.agent.v1 import wire


@dataclass(frozen=True)
class VersionView:
    ref: slots.VersionRef
    state: wire.VersionState
    message: str
    health: stats.Health


@dataclass(frozen=True)
class ModelView:
    model: str
    active: slots.VersionRef | None
    previous: slots.VersionRef | None
    versions: tuple[VersionView, ...]
    health: stats.Health
    owner: owners.Owner | None = None


def version_state(current: slots.ModelSlots, ref: slots.VersionRef) -> wire.VersionState:
    if ref == current.active:
        return wire.VersionState.ACTIVE
    if ref == current.previous:
        return wire.VersionState.PREVIOUS
    if current.failure(ref.version) is not None:
        return wire.VersionState.FAILED
    return wire.VersionState.STORED


class Views:
    def __init__(
        self, *, ledger: Ledger, windows: HealthWindows, clock: Callable[[], float]
    ) -> None:
        self._ledger = ledger
        self._windows = windows
        self._clock = clock

    def view(self, model: str) -> ModelView:
        now = self._clock()
        current = self._ledger.get(model)
        versions = tuple(
            VersionView(
                ref,
                version_state(current, ref),
                current.failure(ref.version) or "",
                self._windows.snapshot(model, ref.version, now=now),
            )
            for ref in reversed(current.held)
        )
        active_health = (
            self._windows.snapshot(model, current.active.version, now=now)
            if current.active
            else self._windows.empty()
        )
        return ModelView(
            model=model,
            active=current.active,
            previous=current.previous,
            versions=versions,
            health=active_health,
            owner=current.owner,
        )

    def views(self) -> list[ModelView]:
        return [self.view(name) for name in self._ledger.names()]
