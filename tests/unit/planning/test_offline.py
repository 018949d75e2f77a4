"""Offline and late agents, decided without a cluster: `reconciling.decide` over snapshots.

An agent offline during its wave is waited for, then counted against `maxFailed` with an
offline reason; it converges when it reconnects, with no second wave and no second push.
After completion, an agent that joins a targeted region converges by itself, one a
policy forbids gets nothing. The same snapshot twice gives the same decision. `Run`
plays the agents between turns the way the executor's outcomes would come back.
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
    offline,
    progress,
    reconciling,
    stepping,
    views,
)

T0 = datetime.datetime(2026, 5, 1, tzinfo=datetime.UTC)
S = datetime.timedelta(seconds=1)
TIMEOUT = 120
SHA = "b" * 64
ACTIVE, STANDBY = views.ModelState.ACTIVE, views.ModelState.STANDBY
Phase = progress.Phase


def rollout(
    *,
    max_failed: int | str = 1,
    canary_failed: int = 0,
    policy_ref: str | None = None,
    paused: bool = False,
) -> modelrollout.ModelRollout:
    spec: dict[str, Any] = {
        "model": {"name": "m", "version": "v2", "uri": "file:///m.onnx", "sha256": SHA},
        "targets": {"regions": ["eu-west", "eu-central"]},
        "strategy": {
            "waves": [
                {
                    "name": "canary",
                    "regions": ["eu-west"],
                    "maxUnavailable": 1,
                    "maxFailed": canary_failed,
                },
                {
                    "name": "rest",
                    "regions": ["eu-central"],
                    "maxUnavailable": 2,
                    "maxFailed": max_failed,
                },
            ],
            "healthGate": {"windowSeconds": 10, "maxErrorRate": 0.1, "minSamples": 0},
            "progressDeadlineSeconds": 60,
            "unreachableTimeoutSeconds": TIMEOUT,
            "paused": paused,
        },
    }
    if policy_ref is not None:
        spec["residency"] = {"policyRef": {"name": policy_ref}}
    return modelrollout.ModelRollout.model_validate(
        {"metadata": {"name": "r", "namespace": "ml", "uid": "u", "generation": 1}, "spec": spec}
    )


def held(version: str, state: views.ModelState = ACTIVE) -> views.HeldModel:
    return views.HeldModel(name="m", version=version, digest=f"d-{version}", state=state)


def agent(name: str, region: str, **kwargs: Any) -> views.AgentView:
    values: dict[str, Any] = {"jurisdiction": "EU", "models": (held("v1"),)}
    values.update(kwargs)
    return views.AgentView(name=name, region=region, **values)


def gone(view: views.AgentView, *, since: datetime.datetime | None = None) -> views.AgentView:
    """`view` as the gateway shows an agent whose session dropped."""
    return dataclasses.replace(view, reachable=False, unreachable_since=since)


def back(view: views.AgentView) -> views.AgentView:
    return dataclasses.replace(view, reachable=True, unreachable_since=None)


@dataclasses.dataclass
class Run:
    """Agents that do what the decision's actions ask, and the turns between them."""

    agents: dict[str, views.AgentView]
    rollout: modelrollout.ModelRollout
    policies: tuple[residencypolicy.ResidencyPolicy, ...] = ()
    now: datetime.datetime = T0
    memory: reconciling.Memory | None = None
    outcomes: reconciling.Outcomes = dataclasses.field(default_factory=reconciling.Outcomes)
    decisions: list[reconciling.Decision] = dataclasses.field(default_factory=list)
    pushes: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """(wave, agent) of every update carried out."""

    def snapshot(self, **kwargs: Any) -> reconciling.Snapshot:
        ref = views.EngineRef(digest="d-v2", backend="ONNXRuntime")
        values: dict[str, Any] = {
            "rollout": self.rollout,
            "fleet": tuple(self.agents.values()),
            "policies": self.policies,
            "now": self.now,
            "engines": builds.Engines(
                by_agent=dict.fromkeys(self.agents, ref),
                paths={ref.digest: Path("/engines/d-v2")},
                statuses=(),
            ),
            "memory": self.memory,
            "outcomes": self.outcomes,
        }
        values.update(kwargs)
        return reconciling.Snapshot(**values)

    def turn(self) -> reconciling.Decision:
        decision = reconciling.decide(self.snapshot())
        self.decisions.append(decision)
        self.memory = decision.memory
        observation = None
        for action in decision.actions:
            if isinstance(action, stepping.UpdateBatch):
                for update in action.updates:
                    assert self.agents[update.agent].reachable, "pushed to an offline agent"
                    self.pushes.append((action.wave, update.agent))
                    self.serve(update.agent)
            elif isinstance(action, stepping.Observe):
                self.now = max(self.now, action.until)
                samples = tuple(gates.HealthSample(agent=a, requests=100) for a in action.agents)
                observation = stepping.Observation(wave=action.wave, samples=samples)
            elif isinstance(action, stepping.RevertBatch):
                for revert in action.reverts:
                    self.agents[revert.agent] = dataclasses.replace(
                        self.agents[revert.agent], models=(held("v1"), held("v2", STANDBY))
                    )
        self.outcomes = reconciling.Outcomes(observation=observation)
        if not decision.actions and decision.wake_at is not None:
            self.now = max(self.now, decision.wake_at)
        self.now += S
        return decision

    def serve(self, name: str) -> None:
        self.agents[name] = dataclasses.replace(
            self.agents[name], models=(held("v1", STANDBY), held("v2"))
        )

    def until(self, done: Any, turns: int = 40) -> reconciling.Decision:
        for _ in range(turns):
            decision = self.turn()
            if done(decision):
                return decision
        raise AssertionError("the condition was never met")

    def reasons(self) -> list[str]:
        return [n.reason for d in self.decisions for n in d.notices if n.agent is None]


def fleet(**overrides: views.AgentView) -> dict[str, views.AgentView]:
    agents = {
        "w-0": agent("w-0", "eu-west"),
        "c-0": agent("c-0", "eu-central"),
        "c-1": agent("c-1", "eu-central"),
    }
    agents.update(overrides)
    return agents


def updated(decision: reconciling.Decision) -> list[str]:
    return [
        u.agent for a in decision.actions if isinstance(a, stepping.UpdateBatch) for u in a.updates
    ]


def wave_status(decision: reconciling.Decision, name: str) -> modelrollout.WaveStatus:
    return next(w for w in decision.status.waves if w.name == name)


def waiting_for_c1(decision: reconciling.Decision) -> bool:
    """The rest wave updated c-0 and has nothing left to do but wait (for c-1)."""
    record = decision.step.progress.wave("rest")
    return record.state is progress.WaveState.PROGRESSING and not decision.actions


def offline_run(**kwargs: Any) -> Run:
    """c-1 is offline from the start; the run stops when the rest wave waits only for it,
    with its clock before c-1's timeout."""
    run = Run(fleet(**{"c-1": gone(agent("c-1", "eu-central"))}), rollout(**kwargs))
    waiting = run.until(waiting_for_c1)
    assert waiting.wake_at is not None
    run.now = waiting.wake_at - 10 * S
    return run


# -- an agent offline during its wave -----------------------------------------------------


def test_an_offline_agent_is_counted_unavailable_and_the_wave_waits_for_it() -> None:
    run = Run(fleet(**{"c-1": gone(agent("c-1", "eu-central"))}), rollout())
    waiting = run.until(waiting_for_c1)
    assert ("rest", "c-1") not in run.pushes and ("rest", "c-0") in run.pushes
    rest = wave_status(waiting, "rest")
    assert (rest.phase, rest.updated, rest.offline, rest.failed) == (
        modelrollout.WavePhase.PROGRESSING,
        1,
        1,
        0,
    )
    assert waiting.status.totals is not None and waiting.status.totals.offline == 1
    assert "1 offline" in (waiting.status.message or "")
    started = waiting.step.progress.wave("rest").started_at
    assert started is not None and waiting.wake_at == started + TIMEOUT * S
    assert "AgentsOffline" not in run.reasons()


def test_offline_agents_do_not_hold_a_max_unavailable_slot() -> None:
    """maxUnavailable 1 in the canary and its only other agent offline: the wave goes on."""
    agents = fleet(**{"w-1": gone(agent("w-1", "eu-west")), "w-2": agent("w-2", "eu-west")})
    decision = Run(agents, rollout()).turn()
    assert updated(decision) == ["w-0"]


@pytest.mark.parametrize(
    ("max_failed", "phase", "wave_phase"),
    [
        (1, Phase.SUCCEEDED, modelrollout.WavePhase.SUCCEEDED),
        ("50%", Phase.SUCCEEDED, modelrollout.WavePhase.SUCCEEDED),  # 50% of 2 is 1
        ("49%", Phase.ROLLED_BACK, modelrollout.WavePhase.FAILED),  # rounds down to 0
        (0, Phase.ROLLED_BACK, modelrollout.WavePhase.FAILED),
    ],
)
def test_after_the_timeout_an_offline_agent_counts_against_max_failed(
    *, max_failed: int | str, phase: Phase, wave_phase: modelrollout.WavePhase
) -> None:
    run = offline_run(max_failed=max_failed)
    final = run.until(lambda d: not d.actions and d.step.progress.phase is phase)
    offline_events = [
        n.message for d in run.decisions for n in d.notices if n.reason == "AgentsOffline"
    ]
    assert offline_events == [
        f"wave rest: agents c-1 offline for {TIMEOUT} s (unreachableTimeoutSeconds); counted "
        "against maxFailed, they receive the version when they reconnect"
    ]
    rest = wave_status(final, "rest")
    assert rest.phase is wave_phase
    assert (rest.failed, rest.offline) == (1, 1)
    assert wave_status(final, "canary").phase is (
        modelrollout.WavePhase.ROLLED_BACK
        if phase is Phase.ROLLED_BACK
        else modelrollout.WavePhase.SUCCEEDED
    )
    assert run.now >= T0 + TIMEOUT * S
    assert ("rest", "c-1") not in run.pushes
    if phase is Phase.ROLLED_BACK:
        failure = final.step.progress.failure
        assert failure is not None and failure.reason == "AgentsOffline"
        assert failure.message == (
            "wave rest: 1 of 2 agents failed (maxFailed 0); offline past "
            f"unreachableTimeoutSeconds ({TIMEOUT} s): c-1"
        )
        degraded = api_conditions.find_condition(final.status.conditions, "Degraded")
        assert degraded is not None and degraded.reason == "AgentsOffline"
        assert "RolledBack" in run.reasons()


def test_the_timeout_runs_from_when_the_agent_was_lost_if_later_than_the_wave() -> None:
    run = Run(fleet(), rollout())
    run.until(lambda d: d.step.progress.wave("rest").state is progress.WaveState.PROGRESSING)
    started = run.decisions[-1].step.progress.wave("rest").started_at
    assert started is not None
    lost = started + 30 * S
    run.agents["c-1"] = gone(agent("c-1", "eu-central"), since=lost)
    run.agents["c-0"] = agent("c-0", "eu-central", models=(held("v2"),))
    decision = run.turn()
    assert decision.actions == () and decision.wake_at == lost + TIMEOUT * S
    rule = offline.Rule(timeout=TIMEOUT * S)
    early = gone(run.agents["c-1"], since=started - 300 * S)  # lost before the wave came
    assert rule.due(early, reached=started) == started + TIMEOUT * S


def test_an_agent_back_before_the_timeout_is_updated_in_its_wave() -> None:
    run = offline_run(max_failed=0)
    run.agents["c-1"] = back(run.agents["c-1"])
    final = run.until(lambda d: d.step.progress.phase is Phase.SUCCEEDED)
    assert run.pushes.count(("rest", "c-1")) == 1
    assert wave_status(final, "rest").failed == 0
    assert "AgentsOffline" not in run.reasons()


def test_an_offline_agent_never_fails_a_gate_by_itself() -> None:
    """The canary's agent serves v2, then drops off: its gate watches only connected agents."""
    agents = fleet(**{"w-1": agent("w-1", "eu-west")})
    run = Run(agents, rollout())
    first = run.turn()
    assert updated(first) == ["w-0"]
    run.agents["w-1"] = gone(agent("w-1", "eu-west", models=(held("v2"),)))
    observing = run.turn()
    (observe,) = observing.actions
    assert isinstance(observe, stepping.Observe) and observe.agents == ("w-0",)


# -- coming back, joining later -----------------------------------------------------------


def _settled_without_c1() -> Run:
    run = offline_run(max_failed=1)
    run.until(lambda d: d.step.progress.phase is Phase.SUCCEEDED and not d.actions)
    return run


def test_it_comes_back_and_converges_without_a_second_wave_or_push() -> None:
    run = _settled_without_c1()
    before = run.decisions[-1]
    run.agents["c-1"] = back(run.agents["c-1"])
    converging = run.turn()
    assert [(a.wave, [u.agent for u in a.updates]) for a in converging.actions] == [  # type: ignore[union-attr]
        ("rest", ["c-1"])
    ]
    assert [n.message for n in converging.notices if n.reason == "ConvergingLateAgents"] == [
        "converging 1 late agents to v2: c-1"
    ]
    assert converging.step.progress.phase is Phase.SUCCEEDED
    assert converging.status.totals is not None and converging.status.totals.converging == 1
    assert "converging 1 late agents" in (converging.status.message or "")
    assert converging.step.progress.waves == before.step.progress.waves  # no wave replayed
    progressing = api_conditions.find_condition(converging.status.conditions, "Progressing")
    assert progressing is not None and progressing.status is api_conditions.ConditionStatus.FALSE
    done = run.turn()
    assert done.actions == ()
    assert run.pushes.count(("rest", "c-1")) == 1
    assert run.reasons().count("WaveStarted") == 2
    assert (wave_status(done, "rest").failed, wave_status(done, "rest").offline) == (0, 0)
    assert done.status.totals is not None and done.status.totals.converging == 0


def test_a_late_agent_of_a_passed_wave_converges_while_later_waves_run() -> None:
    agents = fleet(
        **{"w-1": gone(agent("w-1", "eu-west")), "c-1": gone(agent("c-1", "eu-central"))}
    )
    run = Run(agents, rollout(canary_failed=1))
    waiting = run.until(waiting_for_c1)  # the canary passed without w-1; rest waits for c-1
    assert waiting.wake_at is not None
    run.now = waiting.wake_at - 10 * S  # c-1 still within its timeout
    assert run.decisions[-1].step.progress.wave("canary").state is progress.WaveState.PASSED
    run.agents["w-1"] = back(run.agents["w-1"])
    decision = run.turn()
    assert [(a.wave, [u.agent for u in a.updates]) for a in decision.actions] == [  # type: ignore[union-attr]
        ("canary", ["w-1"])
    ]
    assert decision.step.progress.phase is Phase.PROGRESSING
    assert decision.step.progress.wave("rest").state is progress.WaveState.PROGRESSING
    assert run.pushes.count(("canary", "w-1")) == 1


def test_an_agent_joining_a_targeted_region_after_completion_converges() -> None:
    run = Run(fleet(), rollout())
    run.until(lambda d: d.step.progress.phase is Phase.SUCCEEDED and not d.actions)
    run.agents["c-2"] = agent("c-2", "eu-central")
    joined = run.turn()
    assert updated(joined) == ["c-2"]
    assert joined.step.progress.phase is Phase.SUCCEEDED
    assert [w.agent_names for w in joined.waves][1] == ("c-0", "c-1", "c-2")
    assert "WaveStarted" not in [n.reason for n in joined.notices]
    assert run.turn().actions == ()


def test_an_agent_joining_a_forbidden_region_gets_nothing() -> None:
    policy = residencypolicy.ResidencyPolicy.model_validate(
        {"metadata": {"name": "eu-only"}, "spec": {"allowedJurisdictions": ["EU"]}}
    )
    run = Run(fleet(), rollout(policy_ref="eu-only"), policies=(policy,))
    run.until(lambda d: d.step.progress.phase is Phase.SUCCEEDED and not d.actions)
    run.agents["c-9"] = agent("c-9", "eu-central", jurisdiction="CH")
    decision = run.turn()
    assert updated(decision) == []
    assert [(e.agent, e.reason) for e in decision.newly_excluded] == [
        ("c-9", "JurisdictionNotAllowed")
    ]
    assert decision.eligibility.why_not(run.agents["c-9"]) is not None  # the last check too
    assert decision.status.totals is not None and decision.status.totals.converging == 0


def test_no_convergence_while_paused() -> None:
    run = _settled_without_c1()
    run.rollout = rollout(max_failed=1, paused=True)
    run.agents["c-1"] = back(run.agents["c-1"])
    assert updated(run.turn()) == []


# -- idempotence and restart --------------------------------------------------------------


@pytest.mark.parametrize("situation", ["waiting", "timed-out", "back"])
def test_the_same_snapshot_twice_gives_the_same_decision(situation: str) -> None:
    run = offline_run(max_failed=1)
    if situation != "waiting":
        run.until(lambda d: d.step.progress.phase is Phase.SUCCEEDED and not d.actions)
    if situation == "back":
        run.agents["c-1"] = back(run.agents["c-1"])
    snapshot = run.snapshot()
    assert reconciling.decide(snapshot) == reconciling.decide(snapshot)


@pytest.mark.parametrize("situation", ["waiting", "timed-out", "back"])
def test_a_restarted_operator_decides_the_same_from_the_status(situation: str) -> None:
    """No memory, progress read back from the status: same actions, same counts."""
    run = offline_run(max_failed=1)
    if situation != "waiting":
        run.until(lambda d: d.step.progress.phase is Phase.SUCCEEDED and not d.actions)
    if situation == "back":
        run.agents["c-1"] = back(run.agents["c-1"])
    live = reconciling.decide(run.snapshot())
    persisted = run.rollout.model_copy(update={"status": run.decisions[-1].status})
    restarted = reconciling.decide(run.snapshot(rollout=persisted, memory=None))
    assert restarted.actions == live.actions
    assert restarted.wake_at == live.wake_at
    assert restarted.status.waves == live.status.waves
    assert restarted.status.totals == live.status.totals
    assert restarted.step.progress.phase is live.step.progress.phase
