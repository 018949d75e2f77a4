"""Requests a person makes of a running rollout, decided against its progress. Pure.

`edgewave rollout pause|resume|promote|abort|retry|undo|restart` writes a request
(`edgewave_api.controls`) into an annotation; the next turn answers it here, once per
nonce: `refusal` says in one line why it cannot apply now (the CLI asks the same function
before writing, so both refuse alike), `apply` returns the progress it leads to. What a
request changes is remembered in the progress, so it is written to `status` and read back
after a restart; none of it is in the spec, so a GitOps sync neither shows drift nor
undoes it. An abort or undo ends in a terminal phase bound to the revision: re-applying
the same manifest changes nothing, and only a new revision (or `restart`) moves it on.

Rules:
- a request made against another `metadata.generation` is refused (the spec changed
  since the person looked: they must ask again);
- pause holds an active rollout before its next batch; resume lifts only that hold
  (`spec.strategy.paused` is the manifest's and stays so);
- promote approves the wave awaiting approval; `--full` approves every manual gate and
  skips the pauses between waves for this revision;
- abort rolls back every agent this revision updated and stays rolled back;
- retry restarts a failed rollout from its failed wave (every wave after a rollback, as
  their agents were reverted); agents whose activation failed are tried again;
- undo takes every agent serving the version back to the previous version (or
  `--to-version`), wave by wave, and stays there;
- restart runs the current version again from the first wave (after an abort or undo
  too); agents that already serve it are not updated again.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, replace

from edgewave_api import controls
from edgewave_operator.planning import progress, stepping

Phase = progress.Phase
Action = controls.Action
_ACTIVE = (Phase.PENDING, Phase.PROGRESSING, Phase.PAUSED)


@dataclass(frozen=True, slots=True)
class Answered:
    """A request's effect: the progress after it and the event that reports it."""

    progress: progress.Progress
    event: stepping.Event | None = None


def pending(annotations: Mapping[str, str] | None, *, current: progress.Progress) -> str | None:
    """The annotation's value when it carries a request not answered yet."""
    value = (annotations or {}).get(controls.ANNOTATION)
    if not value:
        return None
    answered = current.answer.nonce if current.answer else None
    try:
        nonce = controls.parse(value).nonce
    except controls.BadRequest:
        # Answer a bad annotation once: remember it by its text.
        return None if answered == _bad_nonce(value) else value
    return None if nonce == answered else value


def _bad_nonce(value: str) -> str:
    return f"invalid-{len(value)}-{sum(value.encode()) % 100000}"


def refusal(
    request: controls.Request,
    *,
    current: progress.Progress,
    generation: int,
    spec_paused: bool,
) -> str | None:
    """Why `request` cannot apply to `current` now (None: it can)."""
    if request.generation != generation:
        return (
            f"the spec changed since the request (generation {request.generation}, now "
            f"{generation}); look at the rollout and ask again"
        )
    if not current.version:
        return "the rollout has not started yet"
    return _REFUSALS[request.action](request, current, spec_paused)


def _awaiting(current: progress.Progress) -> str | None:
    """The wave awaiting approval, if one does."""
    hold = current.hold
    if hold is not None and hold.reason is progress.HoldReason.AWAITING_APPROVAL:
        return hold.wave or "(unnamed)"
    return None


def _refuse_pause(request: controls.Request, current: progress.Progress, _: bool) -> str | None:
    if current.held:
        return "already paused by request"
    return None if current.phase in _ACTIVE else f"the rollout is {current.phase}: nothing to pause"


def _refuse_resume(
    request: controls.Request, current: progress.Progress, spec_paused: bool
) -> str | None:
    if current.held:
        return None
    if spec_paused:
        return "paused by spec.strategy.paused: set it to false in the manifest"
    waiting = _awaiting(current)
    if waiting is not None:
        return f"wave {waiting} awaits approval: use `edgewave rollout promote`"
    return "not paused by request"


def _refuse_promote(request: controls.Request, current: progress.Progress, _: bool) -> str | None:
    phase = current.phase
    if request.full:
        return None if phase in _ACTIVE else f"the rollout is {phase}: nothing to promote"
    return None if _awaiting(current) else f"no wave awaits approval (phase {phase})"


def _refuse_abort(request: controls.Request, current: progress.Progress, _: bool) -> str | None:
    if current.phase in _ACTIVE:
        return None
    if current.phase is Phase.SUCCEEDED:
        return "the rollout already succeeded: use `edgewave rollout undo` to go back"
    return f"the rollout is {current.phase}: nothing to abort"


def _refuse_retry(request: controls.Request, current: progress.Progress, _: bool) -> str | None:
    failure = current.failure
    if current.phase not in (Phase.FAILED, Phase.ROLLED_BACK) or failure is None:
        return f"no failed wave to retry (phase {current.phase})"
    if failure.reason == stepping.Reason.COMPILE_FAILED:
        return "compiling failed: fix the model or build in the spec"
    if failure.reason == stepping.Reason.UNDONE:
        return "the rollout was undone: use `edgewave rollout restart` to roll out again"
    return None


def _refuse_undo(request: controls.Request, current: progress.Progress, _: bool) -> str | None:
    target = request.to_version or current.previous_version
    if current.phase is Phase.ROLLING_BACK:
        return "already rolling back"
    if current.phase is Phase.ROLLED_BACK:
        return "already rolled back: agents serve the previous version"
    if target is None:
        return "no previous version to go back to: pass --to-version"
    if target == current.version:
        return f"the rollout is already about {target}"
    return None


def _refuse_restart(request: controls.Request, current: progress.Progress, _: bool) -> str | None:
    if current.phase is Phase.ROLLING_BACK:
        return "the rollout is rolling back: wait for it to finish"
    return None


_REFUSALS = {
    Action.PAUSE: _refuse_pause,
    Action.RESUME: _refuse_resume,
    Action.PROMOTE: _refuse_promote,
    Action.ABORT: _refuse_abort,
    Action.RETRY: _refuse_retry,
    Action.UNDO: _refuse_undo,
    Action.RESTART: _refuse_restart,
}


def apply(
    request: controls.Request, *, current: progress.Progress, now: datetime.datetime
) -> tuple[progress.Progress, str]:
    """The progress after `request` (already checked by `refusal`) and what changed."""
    return _APPLY[request.action](request, current, now)


def _pause(
    request: controls.Request, current: progress.Progress, now: datetime.datetime
) -> tuple[progress.Progress, str]:
    return replace(current, held=True), "paused before the next batch"


def _resume(
    request: controls.Request, current: progress.Progress, now: datetime.datetime
) -> tuple[progress.Progress, str]:
    return replace(current, held=False), "resumed"


def _promote(
    request: controls.Request, current: progress.Progress, now: datetime.datetime
) -> tuple[progress.Progress, str]:
    if request.full:
        message = "promoted fully: every remaining manual gate approved, no pause between waves"
        return replace(current, full=True), message
    wave = _awaiting(current) or ""
    approved = tuple(sorted({*current.approved, wave}))
    return replace(current, approved=approved), f"approved wave {wave}"


def _abort(
    request: controls.Request, current: progress.Progress, now: datetime.datetime
) -> tuple[progress.Progress, str]:
    failure = progress.Failure(
        reason=stepping.Reason.ABORTED,
        message=f"aborted by request; {current.version} rolled back",
        at=now,
    )
    aborted = replace(current, phase=Phase.ROLLING_BACK, failure=failure)
    return aborted, f"aborted: rolling {current.version} back on every agent it reached"


def _undo(
    request: controls.Request, current: progress.Progress, now: datetime.datetime
) -> tuple[progress.Progress, str]:
    target = request.to_version or current.previous_version or ""
    failure = progress.Failure(
        reason=stepping.Reason.UNDONE,
        message=f"undone by request: agents went back to {target}",
        at=now,
    )
    undone = replace(
        current, phase=Phase.ROLLING_BACK, failure=failure, undo_to=target, finished_at=None
    )
    return undone, f"undoing {current.version}: going back to {target}, wave by wave"


def _restart(
    request: controls.Request, current: progress.Progress, now: datetime.datetime
) -> tuple[progress.Progress, str]:
    restarted = replace(
        current,
        phase=Phase.PROGRESSING,
        waves=(),
        failure=None,
        finished_at=None,
        started_at=now,
        approved=(),
        full=False,
        undo_to=None,
        forgiven=(),
    )
    return restarted, f"restarting {current.version} from the first wave"


def _retry(
    request: controls.Request, current: progress.Progress, now: datetime.datetime
) -> tuple[progress.Progress, str]:
    waves = current.waves
    if current.phase is Phase.ROLLED_BACK:
        first = 0  # the rollback reverted every started wave
    else:
        first = next(
            (i for i, w in enumerate(waves) if w.state is progress.WaveState.FAILED), len(waves)
        )
    forgiven = tuple(sorted({a for w in waves[first:] for a in w.failed_agents}))
    kept = waves[:first]
    retried = replace(
        current,
        phase=Phase.PROGRESSING,
        waves=kept,
        failure=None,
        finished_at=None,
        forgiven=forgiven,
    )
    name = waves[first].name if first < len(waves) else "the first wave"
    return retried, f"retrying from wave {name}"


def answer(
    value: str,
    *,
    current: progress.Progress,
    generation: int,
    spec_paused: bool,
    now: datetime.datetime,
) -> Answered:
    """Answer the annotation `value` (a request not answered yet)."""
    try:
        request = controls.parse(value)
    except controls.BadRequest as error:
        message = str(error)
        return Answered(
            progress=replace(
                current,
                answer=progress.Answer(
                    nonce=_bad_nonce(value), action="", applied=False, message=message, at=now
                ),
            ),
            event=stepping.Event(stepping.EventType.WARNING, "RequestRefused", message),
        )
    why = refusal(request, current=current, generation=generation, spec_paused=spec_paused)
    if why is not None:
        refused = progress.Answer(
            nonce=request.nonce, action=request.action.value, applied=False, message=why, at=now
        )
        return Answered(
            progress=replace(current, answer=refused),
            event=stepping.Event(
                stepping.EventType.WARNING, "RequestRefused", f"{request.action}: {why}"
            ),
        )
    changed, message = apply(request, current=current, now=now)
    applied = progress.Answer(
        nonce=request.nonce, action=request.action.value, applied=True, message=message, at=now
    )
    return Answered(
        progress=replace(changed, answer=applied),
        event=stepping.Event(stepping.EventType.NORMAL, _REASONS[request.action], message),
    )


_APPLY = {
    Action.PAUSE: _pause,
    Action.RESUME: _resume,
    Action.PROMOTE: _promote,
    Action.ABORT: _abort,
    Action.RETRY: _retry,
    Action.UNDO: _undo,
    Action.RESTART: _restart,
}

_REASONS = {
    Action.PAUSE: "PauseRequested",
    Action.RESUME: "ResumeRequested",
    Action.PROMOTE: "Promoted",
    Action.ABORT: "AbortRequested",
    Action.RETRY: "RetryRequested",
    Action.UNDO: "UndoRequested",
    Action.RESTART: "RestartRequested",
}
