"""Counts for a rollout's status: totals, per wave and per region. Pure.

Per-agent detail lives in each EdgeAgent's status; a rollout to thousands of agents keeps
only these counts, so its object stays small.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edgewave_operator.planning import progress, stepping, targeting, views


@dataclass(frozen=True, slots=True)
class Totals:
    targets: int = 0
    updated: int = 0
    healthy: int = 0
    failed: int = 0
    excluded: int = 0


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
    return Totals(
        targets=len(agents),
        updated=len(updated),
        healthy=sum(1 for agent in updated if agent.reachable),
        failed=sum(1 for agent in agents if agent.name in failed),
        excluded=excluded,
    )


def summarize(
    *,
    intent: stepping.Intent,
    waves: Sequence[targeting.Wave],
    targets: targeting.Targeting,
    engines: Mapping[str, views.EngineRef],
    current: progress.Progress,
) -> Summary:
    failed = {name for record in current.waves for name in record.failed_agents}
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
    return Summary(totals=totals, waves=wave_summaries, regions=region_summaries)
