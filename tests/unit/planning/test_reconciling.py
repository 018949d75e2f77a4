"""A rollout turn decided without a cluster: `reconciling.decide` over snapshots, in tables.

Each case builds the snapshot a worker would gather for one situation the integration
tests drive end to end (waves, gates, rollback, pause, supersede, drift, eviction, agent
deletion, compile failure and recovery) and checks the decision: phase, actions, events
and what is remembered for the next turn. `Fleet` plays agents between turns the way the
executor's outcomes would come back, so several turns chain as in the worker.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any

import pytest

from edgewave_api import conditions as api_conditions
from edgewave_api import modelrollout, residencypolicy
from edgewave_operator.planning import (
    builds,
    gates,
    progress,
    reconciling,
    rollbacks,
    stepping,
    views,
)

T0 = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
S = datetime.timedelta(seconds=1)
SHA = "a" * 64
ACTIVE, STANDBY, STAGED = views.ModelState.ACTIVE, views.ModelState.STANDBY, views.ModelState.STAGED
Phase = progress.Phase


def rollout(
    version: str = "v2",
    *,
    generation: int = 1,
    paused: bool = False,
    policy_ref: str | None = None,
    status: modelrollout.ModelRolloutStatus | None = None,
) -> modelrollout.ModelRollout:
    spec: dict[str, Any] = {
        "model": {"name": "m", "version": version, "uri": "file:///m.onnx", "sha256": SHA},
        "targets": {"regions": ["eu-west", "eu-central"]},
        "strategy": {
            "waves": [
                {"name": "canary", "regions": ["eu-west"], "maxUnavailable": 1},
                {"name": "rest", "regions": ["eu-central"], "maxUnavailable": 2},
            ],
            "healthGate": {"windowSeconds": 10, "maxErrorRate": 0.1, "minSamples": 0},
            "pauseBetweenWavesSeconds": 0,
            "paused": paused,
            "progressDeadlineSeconds": 60,
        },
    }
    if policy_ref is not None:
        spec["residency"] = {"policyRef": {"name": policy_ref}}
    body = {
        "metadata": {"name": "r", "namespace": "ml", "uid": "u1", "generation": generation},
        "spec": spec,
    }
    parsed = modelrollout.ModelRollout.model_validate(body)
    return parsed.model_copy(update={"status": status})


def agent(name: str, region: str, *models: views.HeldModel, **kwargs: Any) -> views.AgentView:
    return views.AgentView(name=name, region=region, models=models, **kwargs)


def held(version: str, state: views.ModelState = ACTIVE) -> views.HeldModel:
    return views.HeldModel(
        name="m", version=version, digest=f"d-{version}", backend="ONNXRuntime", state=state
    )


def engines(*names: str, version: str = "v2", **kwargs: Any) -> builds.Engines:
    ref = views.EngineRef(digest=f"d-{version}", backend="ONNXRuntime")
    return builds.Engines(
        by_agent=dict.fromkeys(names, ref),
        paths={ref.digest: Path("/engines") / ref.digest},
        statuses=(),
        **kwargs,
    )


NAMES = ("w-0", "c-0", "c-1")


def fleet(**overrides: views.AgentView) -> dict[str, views.AgentView]:
    agents = {
        "w-0": agent("w-0", "eu-west", held("v1")),
        "c-0": agent("c-0", "eu-central", held("v1")),
        "c-1": agent("c-1", "eu-central", held("v1")),
    }
    agents.update(overrides)
    return agents


@dataclasses.dataclass
class Fleet:
    """Agents that do what the decision's actions ask, and the turns between them."""

    agents: dict[str, views.AgentView]
    rollout: modelrollout.ModelRollout
    now: datetime.datetime = T0
    memory: reconciling.Memory | None = None
    outcomes: reconciling.Outcomes = dataclasses.field(default_factory=reconciling.Outcomes)
    error_rate: float = 0.0
    decisions: list[reconciling.Decision] = dataclasses.field(default_factory=list)

    def snapshot(self, **kwargs: Any) -> reconciling.Snapshot:
        values: dict[str, Any] = {
            "rollout": self.rollout,
            "fleet": tuple(self.agents.values()),
            "policies": (),
            "now": self.now,
            "engines": engines(*self.agents, version=self.rollout.spec.model.version),
            "memory": self.memory,
            "outcomes": self.outcomes,
        }
        values.update(kwargs)
        return reconciling.Snapshot(**values)

    def turn(self, **kwargs: Any) -> reconciling.Decision:
        decision = reconciling.decide(self.snapshot(**kwargs))
        self.decisions.append(decision)
        self.memory, self.outcomes = decision.memory, reconciling.Outcomes()
        observation = None
        for action in decision.actions:
            if isinstance(action, stepping.UpdateBatch):
                for update in action.updates:
                    self.serve(update.agent, update.version)
            elif isinstance(action, stepping.Observe):
                self.now = max(self.now, action.until)
                samples = tuple(
                    gates.HealthSample(agent=a, requests=100, errors=int(100 * self.error_rate))
                    for a in action.agents
                )
                observation = stepping.Observation(wave=action.wave, samples=samples)
            elif isinstance(action, stepping.RevertBatch):
                for revert in action.reverts:
                    assert revert.to_version is not None
                    self.serve(revert.agent, revert.to_version)
        self.outcomes = reconciling.Outcomes(observation=observation)
        if not decision.actions and decision.wake_at is not None:
            self.now = max(self.now, decision.wake_at)
        self.now += S
        return decision

    def serve(self, name: str, version: str) -> None:
        old = self.agents[name]
        others = tuple(
            dataclasses.replace(m, state=STANDBY) for m in old.models if m.version != version
        )
        self.agents[name] = dataclasses.replace(old, models=(*others, held(version)))

    def settle(self, turns: int = 40) -> reconciling.Decision:
        for _ in range(turns):
            decision = self.turn()
            if not decision.actions and decision.step.progress.phase is not Phase.PROGRESSING:
                return decision
        raise AssertionError("the rollout did not settle")

    def reasons(self) -> list[str]:
        return [n.reason for d in self.decisions for n in d.notices if n.agent is None]


def kinds(decision: reconciling.Decision) -> list[str]:
    return [type(action).__name__ for action in decision.actions]


def updated(decision: reconciling.Decision) -> list[str]:
    return [
        update.agent
        for action in decision.actions
        if isinstance(action, stepping.UpdateBatch)
        for update in action.updates
    ]


def condition(decision: reconciling.Decision, kind: str) -> api_conditions.Condition:
    found = api_conditions.find_condition(decision.status.conditions, kind)
    assert found is not None, kind
    return found


# -- waves, gates, rollback, pause ---------------------------------------------------------


def test_first_turn_starts_the_first_wave_with_one_agent() -> None:
    decision = Fleet(fleet(), rollout()).turn()
    assert kinds(decision) == ["UpdateBatch"]
    assert updated(decision) == ["w-0"]
    assert [n.reason for n in decision.notices] == ["RolloutStarted", "WaveStarted"]
    assert decision.again
    assert decision.step.progress.phase is Phase.PROGRESSING
    assert condition(decision, "Compiled").reason == "EnginesReady"
    assert decision.paths == {"d-v2": Path("/engines/d-v2")}


def test_waves_run_in_order_through_their_gates_to_success() -> None:
    run = Fleet(fleet(), rollout())
    final = run.settle()
    assert final.step.progress.phase is Phase.SUCCEEDED
    order = [agent for d in run.decisions for agent in updated(d)]
    assert order == ["w-0", "c-0", "c-1"]
    reasons = run.reasons()
    assert reasons.count("WavePassed") == 2 and reasons[-1] == "RolloutSucceeded"
    assert reasons.index("WavePassed") < reasons.index("WaveStarted", 2)
    assert final.status.phase is modelrollout.RolloutPhase.SUCCEEDED


def test_a_failed_gate_rolls_back_with_fully_resolved_reverts() -> None:
    run = Fleet(fleet(), rollout(), error_rate=0.5)
    decisions = [run.turn() for _ in range(3)]
    failed = decisions[-1]
    assert "WaveFailed" in [n.reason for n in failed.notices]
    assert "RollbackStarted" in [n.reason for n in failed.notices]
    assert failed.step.progress.phase is Phase.ROLLING_BACK
    (batch,) = failed.actions
    assert isinstance(batch, stepping.RevertBatch)
    assert batch.reverts == (
        rollbacks.Revert(
            agent="w-0",
            model="m",
            from_version="v2",
            to_version="v1",
            digest="d-v1",
            backend="ONNXRuntime",
            method=rollbacks.Method.RESTORE,
        ),
    )
    done = run.settle()
    assert done.step.progress.phase is Phase.ROLLED_BACK
    assert "RolledBack" in run.reasons()
    assert condition(done, "Degraded").status is api_conditions.ConditionStatus.TRUE


def test_activation_failures_returned_by_the_executor_fail_the_wave() -> None:
    run = Fleet(fleet(), rollout())
    run.turn()
    run.agents["w-0"] = agent("w-0", "eu-west", held("v1"))  # the activation did not happen
    run.outcomes = reconciling.Outcomes(failures={"canary": {"w-0": "activation refused"}})
    decision = run.turn()
    assert decision.step.progress.wave("canary").failed_agents == ("w-0",)
    assert decision.step.progress.failure is not None
    assert decision.step.progress.failure.reason == "ActivationFailed"


@pytest.mark.parametrize("started", [False, True])
def test_pause_stops_before_the_next_batch(*, started: bool) -> None:
    run = Fleet(fleet(), rollout())
    if started:
        run.turn()
    run.rollout = rollout(paused=True)
    decision = run.turn()
    if started:  # the canary serves: its gate is watched, then nothing new starts
        decision = run.turn()
        decision = run.turn()
    assert "UpdateBatch" not in kinds(decision)
    assert decision.step.progress.phase is Phase.PAUSED
    assert "Paused" in run.reasons()
    run.rollout = rollout(paused=False)
    resumed = run.turn()
    assert updated(resumed) == ["c-0", "c-1"] if started else ["w-0"]
    assert "Resumed" in [n.reason for n in resumed.notices]


def test_a_new_version_supersedes_the_rollout_in_flight() -> None:
    run = Fleet(fleet(), rollout("v2"))
    run.turn()
    run.rollout = rollout("v3", generation=2)
    decision = run.turn()
    assert [n.reason for n in decision.notices][:2] == ["Superseded", "RolloutStarted"]
    assert decision.step.progress.version == "v3"
    assert decision.step.progress.previous_version is None  # v2 never succeeded
    assert updated(decision) == ["w-0"]


# -- drift, eviction, exclusion, deletion -------------------------------------------------


def test_drift_after_success_is_repaired_with_an_event() -> None:
    run = Fleet(fleet(), rollout())
    run.settle()
    run.agents["c-1"] = agent("c-1", "eu-central", held("v1"), held("v2", STANDBY))
    decision = run.turn()
    assert updated(decision) == ["c-1"]
    assert decision.step.progress.phase is Phase.SUCCEEDED
    drift = [n for n in decision.notices if n.reason == "DriftRepair"]
    assert [n.message for n in drift] == ["agents c-1 no longer serve v2; restoring it"]


def test_an_agent_that_moved_region_is_evicted_once_per_retry_window() -> None:
    moved = agent("c-0", "eu-central", held("v1"), reported_region="us-east")
    run = Fleet(fleet(**{"c-0": moved}), rollout())
    first = run.turn()
    assert "EvictBatch" in kinds(first)
    evicting = [n for n in first.notices if n.reason == "ResidencyEviction"]
    assert [n.agent for n in evicting] == [None, "c-0"]
    assert [e.agent for e in first.newly_evicted] == ["c-0"]
    assert first.wake_at is not None and first.wake_at <= run.now + reconciling.EVICTION_RETRY
    again = reconciling.decide(run.snapshot(now=T0 + S))
    assert "EvictBatch" not in kinds(again)  # tried a second ago
    assert not [n for n in again.notices if n.reason == "ResidencyEviction"]
    later = reconciling.decide(run.snapshot(now=T0 + 6 * S))
    assert "EvictBatch" in kinds(later)
    run.agents["c-0"] = agent("c-0", "eu-central", reported_region="us-east")
    gone = run.turn()
    assert [n.message for n in gone.notices if n.reason == "ResidencyEvicted"] == [
        "agent c-0 no longer holds m (ReportedRegionMismatch)"
    ]


def test_exclusions_are_announced_when_they_change_only() -> None:
    run = Fleet(fleet(**{"c-1": agent("c-1", "eu-central", held("v1"), cordoned=True)}), rollout())
    first = run.turn()
    excluded = [n.message for n in first.notices if n.reason == "AgentsExcluded"]
    assert excluded == ["not targeted: 1 Cordoned (c-1)"]
    assert [e.agent for e in first.newly_excluded] == ["c-1"]
    second = run.turn()
    assert not [n for n in second.notices if n.reason == "AgentsExcluded"]
    assert second.newly_excluded == ()


def test_the_last_check_uses_the_targeting_rule() -> None:
    decision = Fleet(fleet(), rollout()).turn()
    rule = decision.eligibility
    assert rule.why_not(agent("w-0", "eu-west")) is None
    assert rule.why_not(None) == "the EdgeAgent was deleted"
    cordoned = rule.why_not(agent("w-0", "eu-west", cordoned=True))
    assert cordoned == "agent w-0 is cordoned; uncordon it to update it"
    moved = rule.why_not(agent("w-0", "eu-west", reported_region="us-east"))
    assert moved is not None and "reports region 'us-east'" in moved


def test_a_deleted_agent_leaves_the_waves() -> None:
    run = Fleet(fleet(), rollout())
    run.turn()
    del run.agents["c-1"]
    final = run.settle()
    assert final.step.progress.phase is Phase.SUCCEEDED
    assert [w.agent_names for w in final.waves] == [("w-0",), ("c-0",)]


def test_a_missing_policy_excludes_every_agent() -> None:
    """Fail closed: nothing is a target, and what holds the model is not compliant either."""
    decision = Fleet(fleet(), rollout(policy_ref="eu-only")).turn()
    assert kinds(decision) == ["EvictBatch"]
    assert decision.targets.targets == ()
    assert {e.source for e in decision.targets.excluded} == {"ResidencyPolicy/eu-only (not found)"}
    assert decision.evicting_under == ()


def test_evictions_are_noted_under_the_policies_that_caused_them() -> None:
    policy = residencypolicy.ResidencyPolicy.model_validate(
        {"metadata": {"name": "west-only"}, "spec": {"allowedRegions": ["eu-west"]}}
    )
    run = Fleet(fleet(), rollout(policy_ref="west-only"))
    decision = run.turn(policies=(policy,))
    assert decision.evicting_under == ("west-only",)
    assert sorted(e.agent for e in decision.evictions) == ["c-0", "c-1"]


# -- compiling ----------------------------------------------------------------------------


def test_compile_failure_is_terminal_for_the_generation_then_recovers() -> None:
    run = Fleet(fleet(), rollout())
    failed = run.turn(engines=None, compile_error="no backend can build this model")
    assert failed.actions == ()
    assert failed.step.progress.phase is Phase.FAILED
    assert [n.reason for n in failed.notices] == ["RolloutStarted", "CompileFailed"]
    assert condition(failed, "Compiled").status is api_conditions.ConditionStatus.FALSE
    assert reconciling.compile_skipped(run.memory, generation=1)
    again = run.turn(engines=None)  # the worker does not compile again for generation 1
    assert again.notices == () and again.step.progress.phase is Phase.FAILED
    assert condition(again, "Compiled").message == "no backend can build this model"
    run.rollout = rollout(generation=2)
    assert not reconciling.compile_skipped(run.memory, generation=2)
    recovered = run.turn()
    assert recovered.step.progress.phase is Phase.PROGRESSING
    assert updated(recovered) == ["w-0"]
    assert run.memory is not None and run.memory.compile_failure is None


def test_no_answer_yet_waits_for_agents() -> None:
    decision = Fleet(fleet(), rollout()).turn(engines=None)
    assert condition(decision, "Compiled").reason == "WaitingForAgents"
    assert "UpdateBatch" not in kinds(decision)


def test_agents_no_backend_serves_or_whose_build_failed_are_excluded() -> None:
    made = engines(
        "w-0", "c-0", refused={"c-1": "no backend"}, build_failed={"c-0": "out of memory"}
    )
    decision = Fleet(fleet(), rollout()).turn(engines=made)
    reasons = {e.agent: e.reason for e in decision.targets.excluded}
    assert reasons == {"c-1": "NoCompatibleBackend", "c-0": "AgentBuildFailed"}
    assert [w.agent_names for w in decision.waves] == [("w-0",), ()]


# -- restart ------------------------------------------------------------------------------


def test_after_a_restart_progress_comes_from_the_status_and_reverts_stay_resolved() -> None:
    """An operator restarted mid-rollback knows agents only from their persisted status."""
    run = Fleet(fleet(), rollout(), error_rate=0.5)
    for _ in range(3):
        decision = run.turn()
    assert decision.step.progress.phase is Phase.ROLLING_BACK
    persisted = rollout(status=decision.status)
    unobserved = {
        name: dataclasses.replace(view, observed=False) for name, view in run.agents.items()
    }
    unobserved["w-0"] = agent("w-0", "eu-west", held("v1", STAGED), held("v2"), observed=False)
    restarted = reconciling.decide(
        reconciling.Snapshot(
            rollout=persisted,
            fleet=tuple(unobserved.values()),
            policies=(),
            now=run.now,
            engines=engines(*NAMES),
        )
    )
    assert restarted.step.progress.phase is Phase.ROLLING_BACK
    (batch,) = restarted.actions
    assert isinstance(batch, stepping.RevertBatch)
    (revert,) = batch.reverts
    assert (revert.to_version, revert.digest, revert.method) == (
        "v1",
        "d-v1",
        rollbacks.Method.ACTIVATE,
    )


# -- deleting the rollout -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("keep", "problems", "expected"),
    [
        (False, {}, ("ModelsRemoved", stepping.EventType.NORMAL, "removed m from agents")),
        (
            False,
            {"c-1": "unreachable", "c-0": "refused"},
            (
                "ModelsRemoved",
                stepping.EventType.WARNING,
                "removed m from agents; could not remove it from c-0, c-1: refused",
            ),
        ),
        (True, {}, ("ModelsKept", stepping.EventType.NORMAL, "kept m on agents (keep=true)")),
    ],
)
def test_deleting_a_rollout_removes_its_model_unless_kept(
    *, keep: bool, problems: dict[str, str], expected: tuple[str, stepping.EventType, str]
) -> None:
    agents = fleet(**{"c-1": agent("c-1", "eu-central")})
    holders = reconciling.holders(model="m", fleet=agents.values(), keep=keep)
    assert holders == (() if keep else ("c-0", "w-0"))
    notice = reconciling.removal_notice(model="m", keep=keep, annotation="keep", problems=problems)
    assert (notice.reason, notice.type, notice.message) == expected
