"""The planner's results written as a ModelRollout status (the API model). Pure.

One function builds the whole status from progress, counts, residency and compile state;
the handler compares it with what it last wrote and patches only on a difference, so a
reconcile that changes nothing writes nothing. Conditions keep their transition times
unless their status flips (`edgewave_api.conditions.set_condition`).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from edgewave_api import conditions as api_conditions
from edgewave_api import modelrollout
from edgewave_operator.planning import conditions, progress, residency, summaries, targeting

MAX_EXAMPLES = 5

_WAVE_PHASES = {
    progress.WaveState.PENDING: modelrollout.WavePhase.PENDING,
    progress.WaveState.PROGRESSING: modelrollout.WavePhase.PROGRESSING,
    progress.WaveState.VERIFYING: modelrollout.WavePhase.VERIFYING,
    progress.WaveState.PASSED: modelrollout.WavePhase.SUCCEEDED,
    progress.WaveState.FAILED: modelrollout.WavePhase.FAILED,
}


def _wave_phase(state: progress.WaveState, phase: progress.Phase) -> modelrollout.WavePhase:
    if phase is progress.Phase.ROLLED_BACK and state in (
        progress.WaveState.PASSED,
        progress.WaveState.PROGRESSING,
        progress.WaveState.VERIFYING,
    ):
        return modelrollout.WavePhase.ROLLED_BACK
    return _WAVE_PHASES[state]


def _gate(result: progress.GateResult | None) -> modelrollout.GateMeasurement | None:
    if result is None:
        return None
    return modelrollout.GateMeasurement(
        p95_latency_ms=result.p95_latency_ms,
        error_rate=result.error_rate,
        samples=result.samples,
        passed=result.passed,
    )


def _message(current: progress.Progress, summary: summaries.Summary) -> str:
    totals = summary.totals
    counts = f"{totals.updated}/{totals.targets} updated"
    if totals.excluded:
        counts += f", {totals.excluded} excluded"
    if totals.offline:
        counts += f", {totals.offline} offline"
    if totals.converging:
        counts += f", converging {totals.converging} late agents"
    if current.failure is not None and current.phase in (
        progress.Phase.ROLLING_BACK,
        progress.Phase.ROLLED_BACK,
        progress.Phase.FAILED,
    ):
        return f"{current.phase}: {current.failure.message} ({counts})"
    active = next(
        (
            w
            for w in summary.waves
            if w.state in (progress.WaveState.PROGRESSING, progress.WaveState.VERIFYING)
        ),
        None,
    )
    where = f", wave {active.name} {active.state.value.lower()}" if active else ""
    return f"{current.phase}{where}: {counts}"


def rollout_status(
    *,
    generation: int,
    current: progress.Progress,
    summary: summaries.Summary,
    targets: targeting.Targeting,
    evictions: Sequence[residency.Eviction],
    compiled: conditions.Condition,
    engines: Sequence[modelrollout.EngineStatus],
    previous: modelrollout.ModelRolloutStatus | None,
    now: datetime.datetime,
    unreadable: str | None = None,
) -> modelrollout.ModelRolloutStatus:
    """The status to write for `current` at `generation` (`unreadable`: why an unreadable
    ResidencyPolicy excludes every agent, if one does)."""
    condition_list: list[api_conditions.Condition] = list(previous.conditions if previous else [])
    for condition in conditions.rollout_conditions(
        current=current,
        compiled=compiled,
        evictions=evictions,
        excluded=summary.totals.excluded,
        unreadable=unreadable,
    ):
        condition_list = api_conditions.set_condition(
            condition_list,
            type=condition.type,
            status=api_conditions.ConditionStatus(condition.status.value),
            reason=condition.reason,
            message=condition.message,
            observed_generation=generation,
            now=now,
        )
    active_wave = next(
        (
            w.name
            for w in current.waves
            if w.state
            in (
                progress.WaveState.PROGRESSING,
                progress.WaveState.VERIFYING,
                progress.WaveState.FAILED,
            )
        ),
        None,
    )
    by_reason: dict[str, list[str]] = {}
    for item in targets.excluded:
        by_reason.setdefault(item.reason, []).append(item.agent)
    totals = summary.totals
    return modelrollout.ModelRolloutStatus(
        observed_generation=generation,
        phase=modelrollout.RolloutPhase(current.phase.value),
        message=_message(current, summary)[:4096],
        ready=f"{totals.healthy}/{totals.targets}",
        current_version=current.version or None,
        previous_version=current.previous_version,
        current_wave=active_wave,
        conditions=condition_list,
        engines=list(engines),
        waves=[
            modelrollout.WaveStatus(
                name=wave.name,
                phase=_wave_phase(wave.state, current.phase),
                targets=wave.totals.targets,
                updated=wave.totals.updated,
                healthy=wave.totals.healthy,
                failed=wave.totals.failed,
                offline=wave.totals.offline,
                started_at=current.wave(wave.name).started_at,
                finished_at=current.wave(wave.name).finished_at,
                gate=_gate(current.wave(wave.name).gate),
            )
            for wave in summary.waves
        ],
        regions=[
            modelrollout.RegionStatus(
                region=region.region,
                targets=region.totals.targets,
                updated=region.totals.updated,
                healthy=region.totals.healthy,
                failed=region.totals.failed,
                offline=region.totals.offline,
                excluded=region.totals.excluded,
            )
            for region in summary.regions
        ],
        totals=modelrollout.RolloutTotals(
            targets=totals.targets,
            updated=totals.updated,
            healthy=totals.healthy,
            failed=totals.failed,
            offline=totals.offline,
            excluded=totals.excluded,
            converging=totals.converging,
        ),
        exclusions=[
            modelrollout.ExclusionSummary(
                reason=reason, count=len(names), examples=sorted(names)[:MAX_EXAMPLES]
            )
            for reason, names in sorted(by_reason.items())
        ],
        started_at=current.started_at,
        finished_at=current.finished_at,
    )
