"""Counts for a rollout's status: totals, per wave and per region. Pure.

Per-agent detail lives in each EdgeAgent's status; a rollout to thousands of agents keeps
only these counts, so its object stays small. `failed` counts failed activations and
agents of started waves offline past the unreachable timeout (`offline.Rule`); `offline`
counts agents not connected that do not serve the version yet (those past the timeout
are in both); `converging` the late agents of passed waves being brought to it.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from edgewave_operator.planning import converging, progress, stepping, targeting, views


@dataclass(frozen=True, slots=True)
class Totals:
    targets: int = 0
    updated: int = 0
    healthy: int = 0
    failed: int = 0
    excluded: int = 0
    offline: int = 0
    converging: int = 0


@dataclass(frozen=True, slots=True)
class WaveSummary:
    name: str
    state: progress.WaveState
    totals: Totals
    message: str = ""


@dataclass(frozen=True, slots=True)
class RegionSummary:
    region: str
    totals: Totals


@dataclass(frozen=True, slots=True)
class Summary:
    totals: Totals
    waves: tuple[WaveSummary, ...]
    regions: tuple[RegionSummary, ...]


def _count(
    agents: Sequence[views.AgentView],
    *,
    intent: stepping.Intent,
    engines: Mapping[str, views.EngineRef],
    failed: set[str],
    excluded: int = 0,
) -> Totals:
    updated = [
        agent
        for agent in agents
        if stepping.is_updated(
            agent, model=intent.model, version=intent.version, engine=engines.get(agent.name)
        )
    ]
    names = {agent.name for agent in updated}
    return Totals(
        targets=len(agents),
        updated=len(updated),
        healthy=sum(1 for agent in updated if agent.reachable),
        failed=sum(1 for agent in agents if agent.name in failed),
        excluded=excluded,
        offline=sum(1 for a in agents if not a.reachable and a.name not in names),
    )


def _failed(
    waves: Sequence[targeting.Wave],
    *,
    intent: stepping.Intent,
    engines: Mapping[str, views.EngineRef],
    current: progress.Progress,
    now: datetime.datetime,
) -> set[str]:
    """Failed activations, and agents of started waves offline past the timeout."""
    failed = {name for record in current.waves for name in record.failed_agents}
    for wave in waves:
        reached = current.wave(wave.name).started_at
        if reached is None:
            continue
        failed.update(
            agent.name
            for agent in wave.agents
            if intent.offline.overdue(agent, reached=reached, now=now)
            and not stepping.is_updated(
                agent, model=intent.model, version=intent.version, engine=engines.get(agent.name)
            )
        )
    return failed


def summarize(
    *,
    intent: stepping.Intent,
    waves: Sequence[targeting.Wave],
    targets: targeting.Targeting,
    engines: Mapping[str, views.EngineRef],
    current: progress.Progress,
    now: datetime.datetime,
) -> Summary:
    failed = _failed(waves, intent=intent, engines=engines, current=current, now=now)
    agents = [agent for wave in waves for agent in wave.agents]
    wave_summaries = tuple(
        WaveSummary(
            name=wave.name,
            state=current.wave(wave.name).state,
            totals=_count(wave.agents, intent=intent, engines=engines, failed=failed),
            message=current.wave(wave.name).message,
        )
        for wave in waves
    )
    regions = sorted({a.region for a in agents} | {e.region for e in targets.excluded})
    region_summaries = tuple(
        RegionSummary(
            region=region,
            totals=_count(
                [a for a in agents if a.region == region],
                intent=intent,
                engines=engines,
                failed=failed,
                excluded=sum(1 for e in targets.excluded if e.region == region),
            ),
        )
        for region in regions
    )
    totals = _count(
        agents, intent=intent, engines=engines, failed=failed, excluded=len(targets.excluded)
    )
    late = converging.late(intent=intent, waves=waves, engines=engines, current=current)
    totals = replace(totals, converging=converging.count(late))
    return Summary(totals=totals, waves=wave_summaries, regions=region_summaries)
