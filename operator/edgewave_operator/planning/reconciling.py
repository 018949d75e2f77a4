"""One ModelRollout turn, decided: `decide(snapshot) -> Decision`. Pure.

The worker (`handlers.rollouts`) gathers a `Snapshot` (the validated rollout, the fleet as
agent views, the policies, the engines or the compile error, what it remembered from the
last turn and what the last actions returned, and `now`), calls `decide`, writes the
decision's status, posts its notices and carries out its actions. Everything a turn
decides is here, as a chain of the pure planners:

1. residency rules (a missing `policyRef` or an unreadable policy allows nothing),
   targets by the one eligibility rule, and evictions (`parsing`, `unreadable`,
   `targeting`, `residency`);
2. the compile state: failed for this generation (terminal until the spec changes),
   failed now, engines ready (a failed rollout resumes), or waiting for agents;
3. agents no backend serves, or whose own build failed, excluded; waves assigned;
4. the next step (`stepping`) from the remembered progress plus the last outcomes, and
   the late agents of passed waves brought to the version (`converging`; offline agents
   are waited for, then counted failed, by `offline`);
5. status (`rendering`), events (the step's with late agents and drift repairs,
   evictions, exclusions), evictions due again, and when to look next.

Nothing here reads a clock, the cluster, an agent or a file: the same snapshot gives the
same decision, which is what `tests/unit/planning/test_reconciling.py` tables.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgewave_api import modelrollout, residencypolicy
from edgewave_operator.planning import (
    builds,
    conditions,
    converging,
    ownership,
    parsing,
    progress,
    rendering,
    residency,
    stepping,
    summaries,
    targeting,
    unreadable,
    views,
)

EVICTION_RETRY = datetime.timedelta(seconds=5)
"""An eviction that did not finish is tried again after this long."""

_EPOCH = datetime.datetime.min.replace(tzinfo=datetime.UTC)


@dataclass(frozen=True, slots=True)
class Outcomes:
    """What the last turn's actions returned (read by the next turn, never stored on it)."""

    failures: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Wave -> agent -> why its activation failed."""
    observation: stepping.Observation | None = None


@dataclass(frozen=True, slots=True)
class CompileFailure:
    generation: int
    message: str


@dataclass(frozen=True, slots=True)
class Memory:
    """What one worker carries from a turn to the next; lost (and rebuilt from the status)
    when the operator restarts."""

    progress: progress.Progress
    compile_failure: CompileFailure | None = None
    evictions_reported: frozenset[tuple[str, str]] = frozenset()
    exclusions_reported: frozenset[tuple[str, str, str]] | None = None
    eviction_attempts: Mapping[str, datetime.datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one turn reads."""

    rollout: modelrollout.ModelRollout
    fleet: tuple[views.AgentView, ...]
    policies: tuple[residencypolicy.ResidencyPolicy, ...]
    now: datetime.datetime
    engines: builds.Engines | None = None
    compile_error: str | None = None
    """Why compiling failed in this turn (a permanent error), if it did."""
    memory: Memory | None = None
    """None on a worker's first turn: progress is read back from the rollout's status."""
    outcomes: Outcomes = field(default_factory=Outcomes)
    unreadable: tuple[unreadable.UnreadablePolicy, ...] = ()
    """ResidencyPolicies that exist but do not parse: every agent is excluded (fail closed)."""


@dataclass(frozen=True, slots=True)
class Notice:
    """One Event to post: about the rollout, or about agent `agent` when set."""

    type: stepping.EventType
    reason: str
    message: str
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class EvictBatch:
    """Remove every version of the model from each eviction's agent."""

    evictions: tuple[residency.Eviction, ...]


Action = stepping.UpdateBatch | stepping.Observe | stepping.RevertBatch | EvictBatch


@dataclass(frozen=True, slots=True)
class Decision:
    """Everything one turn does."""

    status: modelrollout.ModelRolloutStatus
    step: stepping.Step
    summary: summaries.Summary
    notices: tuple[Notice, ...]
    actions: tuple[Action, ...]
    eligibility: targeting.Eligibility
    """The rule the executor applies to each agent again right before touching it."""
    paths: Mapping[str, Path]
    """Engine digest -> file to push."""
    memory: Memory
    wake_at: datetime.datetime | None
    """Look again by then (None: the reconcile period decides)."""
    again: bool
    """The step acted on the rollout itself: decide again as soon as the actions finish."""
    newly_excluded: tuple[targeting.Excluded, ...] = ()
    newly_evicted: tuple[residency.Eviction, ...] = ()
    evicting_under: tuple[str, ...] = ()
    """Policies under which agents are being evicted (for the policies' status)."""
    evictions: tuple[residency.Eviction, ...] = ()
    waves: tuple[targeting.Wave, ...] = ()
    targets: targeting.Targeting = field(default_factory=lambda: targeting.Targeting((), ()))


@dataclass(frozen=True, slots=True)
class Scope:
    """Who the rollout is about, before engines: its intent, rules and targets."""

    intent: stepping.Intent
    rules: residency.ResidencyRules
    targeting: targeting.Targeting
    eviction_rules: residency.ResidencyRules
    """`rules` without the closed rules of unreadable policies (which evict nothing)."""


def scope(
    rollout: modelrollout.ModelRollout,
    *,
    fleet: tuple[views.AgentView, ...],
    policies: tuple[residencypolicy.ResidencyPolicy, ...],
    unreadable_policies: tuple[unreadable.UnreadablePolicy, ...] = (),
) -> Scope:
    """Intent, residency rules and targets (what the engines must be built for)."""
    intent = parsing.intent(rollout)
    known = parsing.effective_rules(rollout, policies)
    rules = residency.ResidencyRules(
        rules=(*known.rules, *unreadable.closed_rules(unreadable_policies))
    )
    found = targeting.select_targets(
        spec=parsing.target_spec(rollout),
        rules=rules,
        fleet=fleet,
        model=intent.model,
        version=intent.version,
    )
    return Scope(intent=intent, rules=rules, targeting=found, eviction_rules=known)


def exclude_unbuildable(
    found: targeting.Targeting, engines: builds.Engines | None
) -> targeting.Targeting:
    """Targets without agents no backend serves or whose own build failed."""
    if engines is None:
        return found
    found = targeting.exclude(
        found, refused=dict(engines.refused), reason=targeting.Exclusion.NO_COMPATIBLE_BACKEND.value
    )
    return targeting.exclude(
        found,
        refused=dict(engines.build_failed),
        reason=targeting.Exclusion.AGENT_BUILD_FAILED.value,
    )


def compile_skipped(memory: Memory | None, *, generation: int) -> bool:
    """Compiling already failed for this generation: do not try again until the spec changes."""
    failure = memory.compile_failure if memory else None
    return failure is not None and failure.generation == generation


@dataclass(frozen=True, slots=True)
class _Compiling:
    """Where compiling stands this turn (step 2 of the chain)."""

    condition: conditions.Condition
    engines: builds.Engines | None
    failure: CompileFailure | None
    current: progress.Progress
    step: stepping.Step | None = None
    """Set when compiling failed: the rollout stops before any agent is touched."""


def _compiling(
    snapshot: Snapshot, *, memory: Memory, intent: stepping.Intent, current: progress.Progress
) -> _Compiling:
    generation, now = snapshot.rollout.metadata.generation or 0, snapshot.now
    failure = memory.compile_failure
    if snapshot.compile_error is not None and not compile_skipped(memory, generation=generation):
        failure = CompileFailure(generation=generation, message=snapshot.compile_error)
    if failure is not None and failure.generation == generation:
        step = stepping.compile_failed(
            intent=intent, current=current, message=failure.message, now=now
        )
        condition = _compiled(conditions.Status.FALSE, "CompileFailed", failure.message)
        return _Compiling(condition, None, failure, current, step)
    engines = snapshot.engines
    if engines is None:
        condition = _compiled(
            conditions.Status.UNKNOWN, "WaitingForAgents", "no target answered yet"
        )
        return _Compiling(condition, None, failure, current)
    condition = _compiled(conditions.Status.TRUE, "EnginesReady", _engines_message(engines))
    return _Compiling(condition, engines, None, stepping.compile_recovered(current))


def decide(snapshot: Snapshot) -> Decision:
    """The turn's decision (see the module docstring for the chain)."""
    rollout, now = snapshot.rollout, snapshot.now
    memory = snapshot.memory or Memory(progress=parsing.progress_of(rollout.status, now=now))
    scoped = scope(
        rollout,
        fleet=snapshot.fleet,
        policies=snapshot.policies,
        unreadable_policies=snapshot.unreadable,
    )
    intent = scoped.intent
    owner = owner_of(rollout)
    evictions = residency.evictions(
        model=intent.model,
        rules=scoped.eviction_rules,
        fleet=ownership.own_fleet(snapshot.fleet, model=intent.model, owner=owner),
    )
    compiling = _compiling(
        snapshot,
        memory=memory,
        intent=intent,
        current=_with_outcomes(memory.progress, snapshot.outcomes),
    )
    engines = compiling.engines
    by_agent: Mapping[str, views.EngineRef] = engines.by_agent if engines else {}
    found = exclude_unbuildable(scoped.targeting, engines)
    found = ownership.exclude_owned_elsewhere(
        found, fleet=snapshot.fleet, model=intent.model, owner=owner
    )
    waves, found = targeting.assign_waves(waves=parsing.wave_specs(rollout), targeting=found)
    step = compiling.step or stepping.next_step(
        intent=intent,
        waves=waves,
        engines=by_agent,
        current=compiling.current,
        now=now,
        observation=snapshot.outcomes.observation,
    )
    step = converging.converge(step, intent=intent, waves=waves, engines=by_agent)
    summary = summaries.summarize(
        intent=intent,
        waves=waves,
        targets=found,
        engines=by_agent,
        current=step.progress,
        now=now,
    )
    status = rendering.rollout_status(
        generation=rollout.metadata.generation or 0,
        current=step.progress,
        summary=summary,
        targets=found,
        evictions=evictions,
        compiled=compiling.condition,
        engines=engines.statuses if engines else (),
        previous=rollout.status,
        now=now,
        unreadable=unreadable.message(snapshot.unreadable),
    )
    eviction_notices, newly_evicted, evictions_reported = _eviction_notices(
        evictions, reported=memory.evictions_reported, model=intent.model
    )
    exclusion_notices, newly_excluded, exclusions_reported = _exclusion_notices(
        found.excluded, reported=memory.exclusions_reported
    )
    due, attempts = _evictions_due(evictions, attempts=memory.eviction_attempts, now=now)
    return Decision(
        status=status,
        step=step,
        summary=summary,
        notices=(
            *(_notice(event) for event in step.events),
            *eviction_notices,
            *exclusion_notices,
        ),
        actions=step.actions + ((EvictBatch(evictions=due),) if due else ()),
        eligibility=targeting.Eligibility(
            rules=scoped.rules, model=intent.model, version=intent.version
        ),
        paths=engines.paths if engines else {},
        memory=Memory(
            progress=step.progress,
            compile_failure=compiling.failure,
            evictions_reported=evictions_reported,
            exclusions_reported=exclusions_reported,
            eviction_attempts=attempts,
        ),
        wake_at=_wake_at(step, evicting=bool(evictions), now=now),
        again=bool(step.actions),
        newly_excluded=newly_excluded,
        newly_evicted=newly_evicted,
        evicting_under=scoped.rules.policies if evictions else (),
        evictions=evictions,
        waves=waves,
        targets=found,
    )


def _wake_at(
    step: stepping.Step, *, evicting: bool, now: datetime.datetime
) -> datetime.datetime | None:
    """When to look again: the step's wait, sooner while an eviction may need a retry."""
    if not evicting:
        return step.wake_at
    retry = now + EVICTION_RETRY
    return min(step.wake_at, retry) if step.wake_at is not None else retry


def _with_outcomes(current: progress.Progress, outcomes: Outcomes) -> progress.Progress:
    for wave, failures in sorted(outcomes.failures.items()):
        current = stepping.record_failures(current, wave=wave, failures=failures)
    return current


def _compiled(status: conditions.Status, reason: str, message: str) -> conditions.Condition:
    return conditions.Condition(
        type=conditions.Type.COMPILED, status=status, reason=reason, message=message
    )


def _engines_message(engines: builds.Engines) -> str:
    message = f"{len(engines.statuses)} engines for {len(engines.by_agent)} agents"
    if engines.refused:
        message += f", {len(engines.refused)} agents unservable"
    return message


def _notice(event: stepping.Event) -> Notice:
    return Notice(type=event.type, reason=event.reason, message=event.message)


def _eviction_notices(
    evictions: tuple[residency.Eviction, ...],
    *,
    reported: frozenset[tuple[str, str]],
    model: str,
) -> tuple[tuple[Notice, ...], tuple[residency.Eviction, ...], frozenset[tuple[str, str]]]:
    """Warnings for evictions not reported yet; a Normal event for each one that ended."""
    notices: list[Notice] = []
    new: list[residency.Eviction] = []
    pending = {(e.agent, e.violation.reason.value) for e in evictions}
    marks = set(reported)
    for eviction in evictions:
        mark = (eviction.agent, eviction.violation.reason.value)
        if mark in marks:
            continue
        marks.add(mark)
        new.append(eviction)
        message = (
            f"removing {eviction.model} {', '.join(eviction.versions)} from agent "
            f"{eviction.agent} (region {eviction.region}): {eviction.violation.message}"
        )
        for about in (None, eviction.agent):
            notices.append(
                Notice(
                    type=stepping.EventType.WARNING,
                    reason="ResidencyEviction",
                    message=message,
                    agent=about,
                )
            )
    for agent, reason in sorted(marks - pending):
        marks.discard((agent, reason))
        notices.append(
            Notice(
                type=stepping.EventType.NORMAL,
                reason="ResidencyEvicted",
                message=f"agent {agent} no longer holds {model} ({reason})",
            )
        )
    return tuple(notices), tuple(new), frozenset(marks)


def _exclusion_notices(
    excluded: tuple[targeting.Excluded, ...],
    *,
    reported: frozenset[tuple[str, str, str]] | None,
) -> tuple[tuple[Notice, ...], tuple[targeting.Excluded, ...], frozenset[tuple[str, str, str]]]:
    """An `AgentsExcluded` event when the set of exclusions changes (and what is new)."""
    current = frozenset((e.agent, e.reason, e.source) for e in excluded)
    if current == reported:
        return (), (), current
    before = reported or frozenset()
    new = tuple(e for e in excluded if (e.agent, e.reason, e.source) not in before)
    if not current:
        return (), new, current
    by_reason: dict[str, list[targeting.Excluded]] = {}
    for item in excluded:
        by_reason.setdefault(item.reason, []).append(item)
    parts = []
    for reason, items in sorted(by_reason.items()):
        names = ", ".join(sorted(i.agent for i in items)[:5])
        more = f" and {len(items) - 5} more" if len(items) > 5 else ""
        sources = ", ".join(sorted({i.source for i in items if i.source}))
        parts.append(
            f"{len(items)} {reason} ({names}{more})" + (f" by {sources}" if sources else "")
        )
    notice = Notice(
        type=stepping.EventType.NORMAL,
        reason="AgentsExcluded",
        message="not targeted: " + "; ".join(parts),
    )
    return (notice,), new, current


def _evictions_due(
    evictions: tuple[residency.Eviction, ...],
    *,
    attempts: Mapping[str, datetime.datetime],
    now: datetime.datetime,
) -> tuple[tuple[residency.Eviction, ...], Mapping[str, datetime.datetime]]:
    """Evictions not tried within `EVICTION_RETRY`, and the attempts remembered after them."""
    due = tuple(e for e in evictions if now - attempts.get(e.agent, _EPOCH) >= EVICTION_RETRY)
    return due, {**attempts, **{e.agent: now for e in due}}


# -- deletion ----------------------------------------------------------------------------


def owner_of(rollout: modelrollout.ModelRollout) -> ownership.Owner:
    """The rollout as the owner of the model it serves."""
    metadata = rollout.metadata
    return ownership.Owner(
        namespace=metadata.namespace or "", name=metadata.name or "", uid=metadata.uid or ""
    )


def holders(
    *,
    model: str,
    fleet: Iterable[views.AgentView],
    keep: bool,
    owner: ownership.Owner | None = None,
) -> tuple[str, ...]:
    """Agents to remove `model` from once its rollout (`owner`) is deleted (none when it
    is kept); agents that hold it only for another rollout are left alone."""
    if keep or not model:
        return ()
    if owner is not None:
        fleet = ownership.own_fleet(fleet, model=model, owner=owner)
    return tuple(sorted(agent.name for agent in fleet if agent.versions_of(model)))


def removal_notice(
    *, model: str, keep: bool, annotation: str, problems: Mapping[str, str]
) -> Notice:
    """The Event that says what deleting the rollout did to its model on the agents."""
    if keep:
        return Notice(
            type=stepping.EventType.NORMAL,
            reason="ModelsKept",
            message=f"kept {model} on agents ({annotation}=true)",
        )
    message = f"removed {model} from agents"
    if problems:
        first = problems[min(problems)]
        message += f"; could not remove it from {', '.join(sorted(problems))}: {first}"
    kind = stepping.EventType.WARNING if problems else stepping.EventType.NORMAL
    return Notice(type=kind, reason="ModelsRemoved", message=message)
