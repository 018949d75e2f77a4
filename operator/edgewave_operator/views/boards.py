"""The dashboard's documents: the rollout list, and one rollout as `edgewave status` sees it. Pure.

A rollout's detail is `rollouts.document` (what `edgewave status -o json` prints: the
status the operator wrote and the agent lines, each agent's wave from the planner) plus
what a page needs to lay it out: the waves of the spec with their recorded progress and
gate numbers, a waves x regions grid naming the agents of each cell, the conditions with
their ages, recent Events, and the lifecycle actions that apply now. Nothing here reads
the cluster or the clock.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from edgewave_api import edgeagent, meta, modelrollout, residencypolicy
from edgewave_api.errors import EdgewaveError
from edgewave_operator.lifecycle import actions
from edgewave_operator.views import ages, dryruns, rollouts

MAX_EVENTS = 20
"""Events shown per rollout, newest first."""
NO_WAVE = "(no wave)"
"""The grid row of agents that hold the model but that the plan puts in no wave."""


@dataclass(frozen=True, slots=True)
class EventLine:
    """One Kubernetes Event about an Edgewave object."""

    kind: str
    namespace: str | None
    name: str
    type: str
    reason: str
    message: str
    time: datetime.datetime | None
    count: int = 1


def _phase(rollout: modelrollout.ModelRollout) -> str:
    status = rollout.status
    return status.phase.value if status and status.phase else "Pending"


def summary(rollout: modelrollout.ModelRollout) -> dict[str, Any]:
    """One row of the rollout list (what `kubectl get mro -o wide` shows)."""
    status = rollout.status
    return {
        "rollout": rollouts.name_of(rollout),
        "namespace": rollout.metadata.namespace,
        "name": rollout.metadata.name,
        "model": rollout.spec.model.name,
        "version": rollout.spec.model.version,
        "phase": _phase(rollout),
        "paused": rollout.spec.strategy.paused,
        "readyAgents": (status.ready if status else None) or "-",
        "currentWave": (status.current_wave if status else None) or "-",
        "message": (status.message if status else None) or "",
        "conditions": [
            {"type": c.type, "status": c.status.value, "reason": c.reason}
            for c in (status.conditions if status else [])
        ],
    }


def listing(found: Iterable[modelrollout.ModelRollout]) -> list[dict[str, Any]]:
    """Every rollout's row, by namespace then name."""
    ordered = sorted(found, key=lambda r: (r.metadata.namespace or "", r.metadata.name or ""))
    return [summary(rollout) for rollout in ordered]


def _gate(gate: modelrollout.GateMeasurement | None) -> dict[str, Any] | None:
    if gate is None:
        return None
    return {
        "samples": gate.samples,
        "p95LatencyMs": gate.p95_latency_ms,
        "errorRate": gate.error_rate,
        "passed": gate.passed,
        "text": rollouts.gate_text(gate),
    }


def waves(rollout: modelrollout.ModelRollout) -> list[dict[str, Any]]:
    """The spec's waves in order, each with its recorded progress (Pending if none yet)."""
    recorded = {w.name: w for w in (rollout.status.waves if rollout.status else [])}
    current = rollout.status.current_wave if rollout.status else None
    found: list[dict[str, Any]] = []
    for spec in rollout.spec.strategy.waves:
        wave = recorded.get(spec.name) or modelrollout.WaveStatus(name=spec.name)
        found.append(
            {
                "name": spec.name,
                "regions": list(spec.regions or []),
                "phase": wave.phase.value,
                "current": spec.name == current,
                "targets": wave.targets,
                "updated": wave.updated,
                "healthy": wave.healthy,
                "failed": wave.failed,
                "gate": _gate(wave.gate),
            }
        )
    return found


def _regions(rollout: modelrollout.ModelRollout, lines: Sequence[rollouts.AgentLine]) -> list[str]:
    """The grid's columns: regions in the order the waves name them, then the others by name."""
    named = [region for wave in rollout.spec.strategy.waves for region in wave.regions or []]
    others = {line.region for line in lines} | {
        r.region for r in (rollout.status.regions if rollout.status else [])
    }
    return list(dict.fromkeys(named)) + sorted(others - set(named))


def grid(rollout: modelrollout.ModelRollout, lines: Sequence[rollouts.AgentLine]) -> dict[str, Any]:
    """Waves x regions: the agents of each cell, by name (empty cells are empty lists)."""
    regions = _regions(rollout, lines)
    rows = [wave.name for wave in rollout.spec.strategy.waves]
    if any(line.wave is None for line in lines):
        rows.append(NO_WAVE)
    cells: dict[tuple[str, str], list[str]] = {}
    for line in lines:
        cells.setdefault((line.wave or NO_WAVE, line.region), []).append(line.name)
    return {
        "regions": regions,
        "rows": [
            {"wave": row, "cells": [cells.get((row, region), []) for region in regions]}
            for row in rows
        ],
    }


def _conditions(
    rollout: modelrollout.ModelRollout, *, now: datetime.datetime
) -> list[dict[str, Any]]:
    return [
        {
            "type": c.type,
            "status": c.status.value,
            "reason": c.reason,
            "message": c.message,
            "age": ages.age(c.last_transition_time, now=now),
        }
        for c in (rollout.status.conditions if rollout.status else [])
    ]


def events_of(
    rollout: modelrollout.ModelRollout,
    events: Iterable[EventLine],
    *,
    now: datetime.datetime,
) -> list[dict[str, Any]]:
    """The newest `MAX_EVENTS` Events about `rollout`, newest first."""
    mine = [
        e
        for e in events
        if e.kind == modelrollout.ModelRollout.crd.kind
        and e.name == rollout.metadata.name
        and e.namespace == rollout.metadata.namespace
    ]
    floor = datetime.datetime.min.replace(tzinfo=datetime.UTC)
    mine.sort(key=lambda e: e.time or floor, reverse=True)
    return [
        {
            "type": e.type,
            "reason": e.reason,
            "message": e.message,
            "count": e.count,
            "time": meta.rfc3339(e.time) if e.time else None,
            "age": ages.age(e.time, now=now),
        }
        for e in mine[:MAX_EVENTS]
    ]


def detail(
    rollout: modelrollout.ModelRollout,
    *,
    agents: Sequence[edgeagent.EdgeAgent],
    policies: Sequence[residencypolicy.ResidencyPolicy],
    events: Iterable[EventLine],
    now: datetime.datetime,
) -> dict[str, Any]:
    """One rollout: `edgewave status -o json`'s document plus the page's layout data."""
    problem = None
    try:
        assigned = dryruns.waves_of(rollout=rollout, agents=agents, policies=policies)
    except (EdgewaveError, ValueError) as error:
        # The page still shows the status the operator wrote; say why waves are unknown.
        assigned, problem = {}, f"cannot place agents in waves: {error}"
    lines = rollouts.agent_lines(rollout, agents, waves=assigned)
    return {
        **rollouts.document(rollout, lines),
        **summary(rollout),
        "planProblem": problem,
        "conditions": _conditions(rollout, now=now),
        "waves": waves(rollout),
        "grid": grid(rollout, lines),
        "events": events_of(rollout, events, now=now),
        "actions": [
            {"name": a.value, "label": actions.ACTIONS[a].label} for a in actions.offered(rollout)
        ],
    }


def board(
    *,
    found: Sequence[modelrollout.ModelRollout],
    selected: str | None,
    agents: Sequence[edgeagent.EdgeAgent],
    policies: Sequence[residencypolicy.ResidencyPolicy],
    events: Iterable[EventLine],
    now: datetime.datetime,
    problem: str | None = None,
) -> dict[str, Any]:
    """What the page draws: the rollout list and, when `selected` (`namespace/name`) names
    one of them, its detail; `problem` says why the data may be stale (API unreachable)."""
    chosen = next((r for r in found if rollouts.name_of(r) == selected), None)
    return {
        "rollouts": listing(found),
        "selected": selected,
        "detail": detail(chosen, agents=agents, policies=policies, events=events, now=now)
        if chosen
        else None,
        "problem": problem,
        "at": meta.rfc3339(now),
    }
