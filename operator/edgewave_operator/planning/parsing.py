"""Live objects (the API's pydantic models) turned into the planner's inputs. Pure.

The one place that knows both shapes: EdgeAgent -> `views.AgentView`, ModelRollout spec
-> `stepping.Intent`, targets and waves, ResidencyPolicies -> `residency.ResidencyRules`,
and a rollout's persisted status back into `progress.Progress` for a restarted operator.
Digests are compared bare (hex, no `sha256:` prefix) everywhere in planning.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from edgewave_api import conditions as api_conditions
from edgewave_api import edgeagent, modelrollout, residencypolicy
from edgewave_operator.planning import (
    gates,
    offline,
    progress,
    residency,
    stepping,
    targeting,
    views,
)

REGION_LABEL = "topology.kubernetes.io/region"
"""If an EdgeAgent carries this label, it must agree with `spec.region` (else: drift)."""


def bare(digest: str) -> str:
    """`sha256:<hex>` or `<hex>` as `<hex>`."""
    return digest.removeprefix("sha256:")


def prefixed(digest: str) -> str:
    """`<hex>` or `sha256:<hex>` as `sha256:<hex>` (how the API spells digests)."""
    return digest if digest.startswith("sha256:") else f"sha256:{digest}"


def _lost_at(status: edgeagent.EdgeAgentStatus) -> datetime.datetime | None:
    """When the operator lost the agent: its Reachable condition's flip to False."""
    condition = next(
        (c for c in status.conditions if c.type == edgeagent.AgentConditionType.REACHABLE), None
    )
    if condition is None or condition.status is not api_conditions.ConditionStatus.FALSE:
        return None
    return condition.last_transition_time


def agent_view(
    agent: edgeagent.EdgeAgent,
    *,
    status: edgeagent.EdgeAgentStatus | None = None,
    observed: bool = False,
) -> views.AgentView:
    """`agent` as the planner sees it; `status` is what the agent answered live, if known.

    Without a live answer the persisted status is used, marked unobserved (it may be stale:
    agent status is written economically), so the planner waits before acting on it.
    """
    live = status if status is not None else agent.status
    labels = dict(agent.metadata.labels or {})
    reachable = False
    if live is not None:
        reachable = api_conditions.is_true(live.conditions, edgeagent.AgentConditionType.REACHABLE)
    unreachable_since = None if reachable or live is None else _lost_at(live)
    return views.AgentView(
        name=agent.metadata.name or "",
        region=agent.spec.region,
        jurisdiction=agent.spec.jurisdiction or "",
        zone=agent.spec.zone or "",
        labels=labels,
        cordoned=agent.spec.cordoned,
        reachable=reachable,
        unreachable_since=unreachable_since,
        observed=observed and status is not None,
        label_region=labels.get(REGION_LABEL),
        reported_region=live.reported_region if live else None,
        reported_jurisdiction=live.reported_jurisdiction if live else None,
        models=tuple(
            views.HeldModel(
                name=held.name,
                version=held.version,
                digest=bare(held.digest),
                backend=held.backend.value,
                state=held.state,
                owner=held.rollout,
            )
            for held in (live.models if live else [])
        ),
    )


def intent(rollout: modelrollout.ModelRollout) -> stepping.Intent:
    spec = rollout.spec
    strategy = spec.strategy
    gate = strategy.health_gate
    return stepping.Intent(
        model=spec.model.name,
        version=spec.model.version,
        revision=spec.model.version,
        gate=gates.GateSpec(
            window=datetime.timedelta(seconds=gate.window_seconds),
            max_p95_latency_ms=gate.max_p95_latency_ms,
            max_error_rate=gate.max_error_rate,
            min_samples=gate.min_samples,
        ),
        pause=datetime.timedelta(seconds=strategy.pause_between_waves_seconds),
        auto_rollback=strategy.auto_rollback,
        paused=strategy.paused,
        progress_deadline=datetime.timedelta(seconds=strategy.progress_deadline_seconds),
        offline=offline.Rule(
            timeout=datetime.timedelta(seconds=strategy.unreachable_timeout_seconds)
        ),
    )


def target_spec(rollout: modelrollout.ModelRollout) -> targeting.TargetSpec:
    targets = rollout.spec.targets
    return targeting.TargetSpec(regions=tuple(targets.regions or ()), selector=targets.selector)


def wave_specs(rollout: modelrollout.ModelRollout) -> tuple[targeting.WaveSpec, ...]:
    return tuple(
        targeting.WaveSpec(
            name=wave.name,
            regions=tuple(wave.regions or ()),
            selector=wave.selector,
            max_unavailable=wave.max_unavailable,
            max_failed=wave.max_failed,
        )
        for wave in rollout.spec.strategy.waves
    )


def policy_applies(
    policy: residencypolicy.ResidencyPolicy, rollout: modelrollout.ModelRollout
) -> bool:
    """The policy governs the rollout: named by `policyRef`, or selecting it by label."""
    ref = rollout.spec.residency.policy_ref if rollout.spec.residency else None
    if ref is not None and ref.name == policy.metadata.name:
        return True
    namespaces = policy.spec.namespaces
    if namespaces is not None and rollout.metadata.namespace not in namespaces:
        return False
    return policy.spec.selector.matches(rollout.metadata.labels or {})


def residency_rules(
    rollout: modelrollout.ModelRollout,
    policies: Iterable[residencypolicy.ResidencyPolicy],
) -> residency.ResidencyRules:
    """The rollout's own residency plus every policy that governs it, by name."""
    rules: list[residency.ResidencyRule] = []
    own = rollout.spec.residency
    if own is not None and (own.allowed_regions or own.allowed_jurisdictions):
        rules.append(
            residency.ResidencyRule(
                source="spec.residency",
                allowed_regions=_set(own.allowed_regions),
                allowed_jurisdictions=_set(own.allowed_jurisdictions),
            )
        )
    for policy in sorted(policies, key=lambda p: p.metadata.name or ""):
        if policy_applies(policy, rollout):
            rules.append(policy_rule(policy))
    return residency.ResidencyRules(rules=tuple(rules))


def policy_rule(policy: residencypolicy.ResidencyPolicy) -> residency.ResidencyRule:
    """One ResidencyPolicy as a rule, named by its source."""
    name = policy.metadata.name or ""
    return residency.ResidencyRule(
        source=residency.policy_source(name),
        allowed_regions=_set(policy.spec.allowed_regions),
        allowed_jurisdictions=_set(policy.spec.allowed_jurisdictions),
        denied_regions=frozenset(policy.spec.denied_regions or ()),
        policy=name,
    )


def effective_rules(
    rollout: modelrollout.ModelRollout,
    policies: Iterable[residencypolicy.ResidencyPolicy],
) -> residency.ResidencyRules:
    """The rules the operator (and `edgewave plan`) applies: `residency_rules`, plus a rule
    that allows nothing when the `policyRef` names a policy that does not exist (fail
    closed: nothing is a target until it does)."""
    policy_list = list(policies)
    rules = residency_rules(rollout, policy_list)
    missing = missing_policy(rollout, policy_list)
    if missing is None:
        return rules
    closed = residency.ResidencyRule(
        source=residency.policy_source(missing, missing=True), allowed_regions=frozenset()
    )
    return residency.ResidencyRules(rules=(*rules.rules, closed))


def missing_policy(
    rollout: modelrollout.ModelRollout,
    policies: Iterable[residencypolicy.ResidencyPolicy],
) -> str | None:
    """The name of a `policyRef` that does not exist (nothing may be rolled out then)."""
    ref = rollout.spec.residency.policy_ref if rollout.spec.residency else None
    if ref is None or any(p.metadata.name == ref.name for p in policies):
        return None
    return ref.name


def _set(values: Iterable[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


_WAVE_STATES = {
    modelrollout.WavePhase.PENDING: progress.WaveState.PENDING,
    modelrollout.WavePhase.PROGRESSING: progress.WaveState.PROGRESSING,
    modelrollout.WavePhase.VERIFYING: progress.WaveState.VERIFYING,
    modelrollout.WavePhase.SUCCEEDED: progress.WaveState.PASSED,
    modelrollout.WavePhase.FAILED: progress.WaveState.FAILED,
    # Shown after a rollback; it had started, which is all a rollback needs to know.
    modelrollout.WavePhase.ROLLED_BACK: progress.WaveState.PASSED,
}


def progress_of(
    status: modelrollout.ModelRolloutStatus | None, *, now: datetime.datetime
) -> progress.Progress:
    """The progress a previous operator persisted (a wave's gate window restarts `now`)."""
    if status is None or status.current_version is None:
        return progress.Progress()
    phase = progress.Phase(status.phase.value) if status.phase else progress.Phase.PENDING
    if status.phase is modelrollout.RolloutPhase.COMPILING:
        phase = progress.Phase.PROGRESSING
    waves = tuple(
        progress.WaveProgress(
            name=wave.name,
            state=_WAVE_STATES[wave.phase],
            started_at=wave.started_at,
            verifying_since=now if wave.phase is modelrollout.WavePhase.VERIFYING else None,
            finished_at=wave.finished_at,
            gate=progress.GateResult(
                samples=wave.gate.samples,
                p95_latency_ms=wave.gate.p95_latency_ms,
                error_rate=wave.gate.error_rate,
                passed=wave.gate.passed,
            )
            if wave.gate
            else None,
        )
        for wave in status.waves
    )
    failure = None
    degraded = api_conditions.find_condition(
        status.conditions, modelrollout.RolloutConditionType.DEGRADED
    )
    if degraded is not None and degraded.status is api_conditions.ConditionStatus.TRUE:
        failed_wave = next((w.name for w in waves if w.state is progress.WaveState.FAILED), None)
        failure = progress.Failure(
            reason=degraded.reason,
            message=degraded.message,
            at=degraded.last_transition_time,
            wave=failed_wave,
        )
    return progress.Progress(
        revision=status.current_version,
        version=status.current_version,
        previous_version=status.previous_version,
        phase=phase,
        waves=waves,
        failure=failure,
        started_at=status.started_at,
        finished_at=status.finished_at,
    )
