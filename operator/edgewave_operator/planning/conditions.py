"""Status conditions of a ModelRollout, derived from its progress. Pure.

Statuses, reasons and messages only: `edgewave_api.conditions.set_condition` adds
`observedGeneration` and moves `lastTransitionTime` only on a flip. Besides the product's own
types (Ready, Progressing, Degraded, Compiled, ResidencyCompliant) the set includes the
kstatus "abnormal-true" pair, Reconciling and Stalled: kstatus (cli-utils; kpt, Config Sync,
Flux by default) reads Reconciling=True as InProgress and Stalled=True as Failed, else falls
back to Ready. Until the first status write only the CRD's `observedGeneration: 0` default
keeps kstatus from calling the rollout Current; docs/gitops/README.md has the measured table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from edgewave_operator.planning import progress, residency

Phase = progress.Phase


class Status(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Type(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    COMPILED = "Compiled"
    RESIDENCY_COMPLIANT = "ResidencyCompliant"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: Status
    reason: str
    message: str = ""


def rollout_conditions(
    *,
    current: progress.Progress,
    compiled: Condition,
    evictions: Sequence[residency.Eviction],
    excluded: int,
    unreadable: str | None = None,
) -> tuple[Condition, ...]:
    """The full condition set for a rollout (transition times are set when written).

    `unreadable` says which ResidencyPolicy cannot be parsed (planning fails closed on it):
    residency cannot be proven then, so `ResidencyCompliant` is False and says why.
    """
    phase = current.phase
    failure = current.failure
    ready = Condition(
        type=Type.READY,
        status=Status.TRUE if phase is Phase.SUCCEEDED else Status.FALSE,
        reason="RolloutSucceeded" if phase is Phase.SUCCEEDED else phase.value,
        message=(
            f"{current.version} serves on every target"
            if phase is Phase.SUCCEEDED
            else (failure.message if failure else f"rollout of {current.version} is {phase}")
        ),
    )
    moving = phase in (Phase.PENDING, Phase.PROGRESSING, Phase.ROLLING_BACK)
    progressing = Condition(
        type=Type.PROGRESSING,
        status=Status.TRUE if moving else Status.FALSE,
        reason={
            Phase.SUCCEEDED: "RolloutComplete",
            Phase.PAUSED: "Paused",
            Phase.ROLLED_BACK: "RolledBack",
            Phase.FAILED: "RolloutFailed",
        }.get(phase, phase.value),
        message=f"phase {phase}",
    )
    degraded_now = phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK, Phase.FAILED)
    degraded = Condition(
        type=Type.DEGRADED,
        status=Status.TRUE if degraded_now and failure else Status.FALSE,
        reason=failure.reason if degraded_now and failure else "AsExpected",
        message=_with_numbers(failure) if degraded_now and failure else "",
    )
    compliant = Condition(
        type=Type.RESIDENCY_COMPLIANT,
        status=Status.FALSE if evictions else Status.TRUE,
        reason=evictions[0].violation.reason.value if evictions else "Compliant",
        message=(
            "removing the model from agents where it may not be: "
            + "; ".join(e.violation.message for e in evictions[:5])
            + (f" (and {len(evictions) - 5} more)" if len(evictions) > 5 else "")
            if evictions
            else f"every copy is where residency allows ({excluded} agents excluded)"
        ),
    )
    if unreadable is not None:
        # Residency cannot be proven: not compliant, and not Ready (vacuously "serving on
        # every target" would read as healthy to GitOps tools).
        ready = Condition(
            type=Type.READY, status=Status.FALSE, reason="PolicyUnreadable", message=unreadable
        )
        if not evictions:
            compliant = Condition(
                type=Type.RESIDENCY_COMPLIANT,
                status=Status.FALSE,
                reason="PolicyUnreadable",
                message=unreadable,
            )
    reconciling = replace(progressing, type=Type.RECONCILING)
    stalled = Condition(
        type=Type.STALLED,
        status=Status.TRUE if phase.terminal else Status.FALSE,
        reason=degraded.reason if phase.terminal else "AsExpected",
        message=degraded.message if phase.terminal else "",
    )
    return (ready, progressing, degraded, compiled, compliant, reconciling, stalled)


def _with_numbers(failure: progress.Failure) -> str:
    if not failure.numbers:
        return failure.message
    numbers = ", ".join(f"{key}={value:g}" for key, value in sorted(failure.numbers.items()))
    return f"{failure.message} [{numbers}]"
