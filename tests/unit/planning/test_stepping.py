"""The rollout stepper, driven against a simulated fleet until it settles.

The simulation applies each step's actions the way agents would (an update makes the
version active unless the agent is set to fail, a revert makes the old one active) and
advances a fake clock for waits and gate windows. Assertions are on behaviour: wave order,
batch sizes, no agent updated twice, rollback coverage, restart equivalence.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Mapping

import pytest

from edgewave_operator.planning import (
    converging,
    gates,
    offline,
    progress,
    residency,
    stepping,
    targeting,
    views,
)

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
S = datetime.timedelta(seconds=1)
ACTIVE, STANDBY, FAILED = views.ModelState.ACTIVE, views.ModelState.STANDBY, views.ModelState.FAILED
Phase = progress.Phase

REGIONS = ("eu-west", "eu-central", "us-east")
WAVES = (
    targeting.WaveSpec(name="canary", regions=("eu-west",), max_unavailable=1),
    targeting.WaveSpec(name="eu", regions=("eu-central",), max_unavailable="50%"),
    targeting.WaveSpec(name="us", regions=("us-east",), max_unavailable=2),
)
GATE = gates.GateSpec(window=2 * S, max_error_rate=0.1, max_p95_latency_ms=100.0)


def intent(version: str = "v2", **kwargs: object) -> stepping.Intent:
    values: dict[str, object] = {
        "model": "m",
        "version": version,
        "revision": f"rev-{version}",
        "gate": GATE,
        "pause": 5 * S,
        "progress_deadline": 60 * S,
    }
    values.update(kwargs)
    return stepping.Intent(**values)  # type: ignore[arg-type]


def fleet(per_region: int = 2) -> dict[str, views.AgentView]:
    agents = {}
    for region in REGIONS:
        for i in range(per_region):
            name = f"{region}-{i}"
            agents[name] = views.AgentView(
                name=name,
                region=region,
                jurisdiction="US" if region.startswith("us") else "EU",
                models=(views.HeldModel(name="m", version="v1", digest="d1", state=ACTIVE),),
            )
    return agents


@dataclasses.dataclass
class Sim:
    agents: dict[str, views.AgentView]
    intent: stepping.Intent
    waves: tuple[targeting.WaveSpec, ...] = WAVES
    rules: residency.ResidencyRules = dataclasses.field(default_factory=residency.ResidencyRules)
    now: datetime.datetime = T0
    current: progress.Progress = dataclasses.field(default_factory=progress.Progress)
    failing: frozenset[str] = frozenset()  # activation fails (probe fails) on these
    slow: Mapping[str, float] = dataclasses.field(default_factory=dict)  # p95 by agent
    updates: list[tuple[datetime.datetime, str, str, str]] = dataclasses.field(
        default_factory=list
    )  # (time, wave, agent, version)
    reverts: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)
    events: list[stepping.Event] = dataclasses.field(default_factory=list)
    observation: stepping.Observation | None = None
    hook: Callable[[Sim], None] | None = None

    def plan(self) -> stepping.Step:
        found = targeting.select_targets(
            spec=targeting.TargetSpec(),
            rules=self.rules,
            fleet=self.agents.values(),
            model=self.intent.model,
            version=self.intent.version,
        )
        waves, _ = targeting.assign_waves(waves=self.waves, targeting=found)
        engines = {
            a.name: views.EngineRef(digest=f"d-{self.intent.version}", backend="ORT")
            for a in found.targets
        }
        step = stepping.next_step(
            intent=self.intent,
            waves=waves,
            engines=engines,
            current=self.current,
            now=self.now,
            observation=self.observation,
        )
        # As `reconciling.decide` does: late agents of passed waves converge.
        return converging.converge(step, intent=self.intent, waves=waves, engines=engines)

    def tick(self) -> stepping.Step:
        step = self.plan()
        self.current = step.progress
        self.events.extend(step.events)
        self.observation = None
        for action in step.actions:
            self.apply(action)
        if not step.actions and step.wake_at is not None:
            self.now = max(self.now, step.wake_at)
        self.now += S / 10
        if self.hook is not None:
            self.hook(self)
        return step

    def apply(self, action: stepping.Action) -> None:
        if isinstance(action, stepping.UpdateBatch):
            failures = {}
            for update in action.updates:
                self.updates.append((self.now, action.wave, update.agent, update.version))
                agent = self.agents[update.agent]
                others = tuple(
                    dataclasses.replace(h, state=STANDBY)
                    for h in agent.models
                    if h.version != update.version
                )
                if update.agent in self.failing:
                    failed = views.HeldModel(
                        name="m", version=update.version, digest=update.engine.digest, state=FAILED
                    )
                    kept = tuple(h for h in agent.models if h.version != update.version)
                    self.agents[update.agent] = dataclasses.replace(agent, models=(*kept, failed))
                    failures[update.agent] = "probe failed"
                    continue
                new = views.HeldModel(
                    name="m", version=update.version, digest=update.engine.digest, state=ACTIVE
                )
                self.agents[update.agent] = dataclasses.replace(agent, models=(*others, new))
            self.current = stepping.record_failures(
                self.current, wave=action.wave, failures=failures
            )
        elif isinstance(action, stepping.Observe):
            self.now = max(self.now, action.until)
            self.observation = stepping.Observation(
                wave=action.wave,
                samples=tuple(
                    gates.HealthSample(agent=a, requests=50, p95_latency_ms=self.slow.get(a, 5.0))
                    for a in action.agents
                ),
            )
        elif isinstance(action, stepping.RevertBatch):
            for revert in action.reverts:
                self.reverts.append((revert.agent, revert.to_version))
                agent = self.agents[revert.agent]
                models = tuple(
                    dataclasses.replace(
                        h, state=ACTIVE if h.version == revert.to_version else STANDBY
                    )
                    for h in agent.models
                    if revert.to_version is not None or h.version != revert.from_version
                )
                self.agents[revert.agent] = dataclasses.replace(agent, models=models)

    def run(self, limit: int = 200) -> stepping.Step:
        for _ in range(limit):
            step = self.tick()
            if not step.actions and step.wake_at is None:
                return step
        raise AssertionError(f"did not settle: {self.current}")

    def reasons(self) -> list[str]:
        return [event.reason for event in self.events]


def test_three_wave_rollout_in_order_with_batches_limited() -> None:
    sim = Sim(agents=fleet(per_region=4), intent=intent())
    final = sim.run()
    assert final.progress.phase is Phase.SUCCEEDED
    assert all(a.active_version("m") == "v2" for a in sim.agents.values())
    # every agent updated exactly once
    assert sorted(agent for _, _, agent, _ in sim.updates) == sorted(sim.agents)
    # waves in order: every update of a wave after every update of the previous one,
    # separated at least by the gate window and the pause
    times = {w.name: [t for t, wave, _, _ in sim.updates if wave == w.name] for w in WAVES}
    assert max(times["canary"]) + GATE.window + 5 * S <= min(times["eu"])
    assert max(times["eu"]) + GATE.window + 5 * S <= min(times["us"])
    # batches: updates sharing a timestamp never exceed the wave's maxUnavailable
    for name, limit in (("canary", 1), ("eu", 2), ("us", 2)):
        per_instant: dict[datetime.datetime, int] = {}
        for t in times[name]:
            per_instant[t] = per_instant.get(t, 0) + 1
        assert max(per_instant.values()) == limit
    assert sim.reasons().count("WaveStarted") == 3
    assert sim.reasons().count("WavePassed") == 3
    assert sim.reasons()[-1] == "RolloutSucceeded"
    assert final.progress.previous_version is None


def test_restart_at_any_point_neither_repeats_nor_skips() -> None:
    reference = Sim(agents=fleet(), intent=intent())
    reference.run()
    for crash_after in range(1, 25):
        sim = Sim(agents=fleet(), intent=intent())
        for _ in range(crash_after):
            sim.tick()
        # A new operator process: same persisted progress and agents, no observation
        # in flight (the gate watch is lost and restarted).
        sim.observation = None
        sim.run()
        assert sim.current.phase is Phase.SUCCEEDED
        updated = [agent for _, _, agent, _ in sim.updates]
        assert sorted(updated) == sorted(set(updated)) == sorted(sim.agents), crash_after
        assert [w for _, w, _, _ in sim.updates] == [w for _, w, _, _ in reference.updates]


def test_a_failed_activation_in_wave_two_rolls_back_every_updated_agent() -> None:
    sim = Sim(agents=fleet(), intent=intent(), failing=frozenset({"eu-central-1"}))
    final = sim.run()
    assert final.progress.phase is Phase.ROLLED_BACK
    assert all(a.active_version("m") == "v1" for a in sim.agents.values())
    reverted = sorted(agent for agent, _ in sim.reverts)
    assert reverted == ["eu-central-0", "eu-west-0", "eu-west-1"]
    assert all(to == "v1" for _, to in sim.reverts)
    assert not any(wave == "us" for _, wave, _, _ in sim.updates)
    failure = final.progress.failure
    assert failure is not None and failure.reason == "ActivationFailed"
    assert failure.wave == "eu" and "eu-central-1" in failure.message
    # The agent's own words (what the executor returned) say why, not only who.
    assert failure.message.endswith("(maxFailed 0): eu-central-1; eu-central-1: probe failed")
    assert failure.numbers == {"failed": 1, "maxFailed": 0}
    assert sim.reasons()[-3:] == ["WaveFailed", "RollbackStarted", "RolledBack"]
    # terminal: nothing more happens until the spec changes
    assert sim.plan().actions == ()


def test_max_failed_tolerates_that_many() -> None:
    waves = (targeting.WaveSpec(name="all", max_unavailable=2, max_failed=1),)
    sim = Sim(agents=fleet(), intent=intent(), waves=waves, failing=frozenset({"us-east-0"}))
    assert sim.run().progress.phase is Phase.SUCCEEDED
    assert sim.agents["us-east-0"].active_version("m") == "v1"


def test_a_failed_latency_gate_rolls_back_with_the_numbers() -> None:
    sim = Sim(agents=fleet(), intent=intent(), slow={"eu-west-1": 250.0})
    final = sim.run()
    assert final.progress.phase is Phase.ROLLED_BACK
    failure = final.progress.failure
    assert failure is not None
    assert failure.reason == "LatencyTooHigh"
    assert failure.numbers["p95LatencyMs"] == 250.0
    assert "eu-west-1" in failure.message
    assert sorted(a for a, _ in sim.reverts) == ["eu-west-0", "eu-west-1"]


def test_without_auto_rollback_the_rollout_stops_and_agents_keep_their_version() -> None:
    sim = Sim(agents=fleet(), intent=intent(auto_rollback=False), slow={"eu-west-1": 250.0})
    final = sim.run()
    assert final.progress.phase is Phase.FAILED
    assert sim.reverts == []
    assert sim.agents["eu-west-0"].active_version("m") == "v2"


def test_paused_stops_before_the_next_batch_and_resumes() -> None:
    sim = Sim(agents=fleet(), intent=intent())
    while len(sim.updates) < 1:
        sim.tick()
    sim.intent = intent(paused=True)
    step = sim.run()
    assert step.progress.phase is Phase.PAUSED
    assert len(sim.updates) == 1
    sim.intent = intent()
    assert sim.run().progress.phase is Phase.SUCCEEDED
    assert "Paused" in sim.reasons() and "Resumed" in sim.reasons()


def test_a_new_version_supersedes_a_running_rollout() -> None:
    sim = Sim(agents=fleet(), intent=intent())
    while not any(w == "eu" for _, w, _, _ in sim.updates):
        sim.tick()
    sim.intent = intent("v3")
    final = sim.run()
    assert final.progress.phase is Phase.SUCCEEDED
    assert final.progress.version == "v3"
    assert all(a.active_version("m") == "v3" for a in sim.agents.values())
    assert "Superseded" in sim.reasons()
    # the superseded rollout never reached the last wave
    assert not any(v == "v2" and w == "us" for _, w, _, v in sim.updates)


def test_previous_version_follows_success() -> None:
    sim = Sim(agents=fleet(), intent=intent())
    sim.run()
    sim.intent = intent("v3")
    sim.run()
    assert sim.current.previous_version == "v2"


def test_offline_agent_fails_an_intolerant_wave_after_the_unreachable_timeout() -> None:
    agents = fleet()
    agents["eu-west-1"] = dataclasses.replace(agents["eu-west-1"], reachable=False)
    rule = offline.Rule(timeout=90 * S)  # longer than the progress deadline: it governs
    sim = Sim(agents=agents, intent=intent(offline=rule))
    final = sim.run()
    assert final.progress.failure is not None
    assert final.progress.failure.reason == "AgentsOffline"
    assert "offline past unreachableTimeoutSeconds (90 s): eu-west-1" in (
        final.progress.failure.message
    )
    assert final.progress.failure.numbers == {"failed": 1, "offline": 1, "maxFailed": 0}
    assert sim.now >= T0 + 90 * S
    assert final.progress.phase is Phase.ROLLED_BACK
    assert sim.reverts == [("eu-west-0", "v1")]


def test_connected_agent_never_heard_from_fails_the_wave_at_the_deadline() -> None:
    agents = fleet()
    agents["eu-west-1"] = dataclasses.replace(agents["eu-west-1"], observed=False)
    sim = Sim(agents=agents, intent=intent())
    final = sim.run()
    assert final.progress.failure is not None
    assert final.progress.failure.reason == "ProgressDeadlineExceeded"
    assert "agents eu-west-1 did not answer" in final.progress.failure.message
    assert T0 + 60 * S <= sim.now < T0 + 70 * S
    assert sim.reverts == [("eu-west-0", "v1")]


def test_agent_back_before_the_deadline_is_updated() -> None:
    agents = fleet()
    agents["eu-west-1"] = dataclasses.replace(agents["eu-west-1"], reachable=False)

    def come_back(sim: Sim) -> None:
        if sim.now > T0 + 10 * S:
            sim.agents["eu-west-1"] = dataclasses.replace(sim.agents["eu-west-1"], reachable=True)

    sim = Sim(agents=agents, intent=intent(), hook=come_back)
    assert sim.run().progress.phase is Phase.SUCCEEDED


def test_agents_not_yet_observed_wait() -> None:
    agents = fleet()
    agents = {n: dataclasses.replace(a, observed=False) for n, a in agents.items()}
    sim = Sim(agents=agents, intent=intent())
    # Not heard from yet, hence no engine either: nothing fails, nothing happens.
    step = stepping.next_step(
        intent=intent(), waves=_waves(agents), engines={}, current=sim.current, now=T0
    )
    assert step.actions == () and step.wake_at is not None
    assert step.progress.phase is Phase.PROGRESSING
    assert step.progress.wave("canary").failed_agents == ()


def test_observed_agent_without_engine_fails() -> None:
    agents = fleet()
    step = stepping.next_step(
        intent=intent(), waves=_waves(agents), engines={}, current=progress.Progress(), now=T0
    )
    assert step.progress.failure is not None
    assert "eu-west-0" in step.progress.failure.message


def _waves(agents: dict[str, views.AgentView]) -> tuple[targeting.Wave, ...]:
    found = targeting.select_targets(
        spec=targeting.TargetSpec(),
        rules=residency.ResidencyRules(),
        fleet=agents.values(),
        model="m",
        version="v2",
    )
    return targeting.assign_waves(waves=WAVES, targeting=found)[0]


def test_drift_is_repaired_after_success() -> None:
    sim = Sim(agents=fleet(), intent=intent())
    sim.run()
    count = len(sim.updates)
    wiped = dataclasses.replace(sim.agents["us-east-1"], models=())
    sim.agents["us-east-1"] = wiped
    step = sim.tick()
    assert [(u.agent, u.repair) for a in step.actions for u in a.updates] == [  # type: ignore[union-attr]
        ("us-east-1", True)
    ]
    sim.run()
    assert len(sim.updates) == count + 1
    assert sim.current.phase is Phase.SUCCEEDED


def test_residency_excluded_agents_are_never_updated() -> None:
    rules = residency.ResidencyRules(
        rules=(residency.ResidencyRule(source="p", allowed_jurisdictions=frozenset({"EU"})),)
    )
    sim = Sim(agents=fleet(), intent=intent(), rules=rules)
    assert sim.run().progress.phase is Phase.SUCCEEDED
    assert {agent for _, _, agent, _ in sim.updates} == {
        "eu-west-0",
        "eu-west-1",
        "eu-central-0",
        "eu-central-1",
    }


def test_agent_moving_out_of_a_wave_mid_rollout_gets_nothing_more() -> None:
    rules = residency.ResidencyRules(
        rules=(residency.ResidencyRule(source="p", allowed_jurisdictions=frozenset({"EU"})),)
    )

    def relabel(sim: Sim) -> None:
        if any(w == "canary" for _, w, _, _ in sim.updates):
            agent = sim.agents["eu-central-0"]
            sim.agents["eu-central-0"] = dataclasses.replace(agent, reported_region="us-east")

    sim = Sim(agents=fleet(), intent=intent(), rules=rules, hook=relabel)
    sim.run()
    assert "eu-central-0" not in {agent for _, _, agent, _ in sim.updates}
    assert sim.current.phase is Phase.SUCCEEDED


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        (Phase.SUCCEEDED, "v2"),
        (Phase.PROGRESSING, "v0"),
        (Phase.ROLLED_BACK, "v0"),
    ],
)
def test_previous_version_on_a_new_revision(phase: progress.Phase, expected: str) -> None:
    old = progress.Progress(revision="rev-v2", version="v2", previous_version="v0", phase=phase)
    step = stepping.next_step(intent=intent("v3"), waves=(), engines={}, current=old, now=T0)
    assert step.progress.previous_version == expected
    assert step.progress.revision == "rev-v3"
    superseded = "Superseded" in [e.reason for e in step.events]
    assert superseded is (phase is Phase.PROGRESSING)


def test_empty_waves_pass_without_waiting() -> None:
    sim = Sim(agents={}, intent=intent())
    assert sim.run().progress.phase is Phase.SUCCEEDED
    assert sim.now < T0 + S


def test_record_failures_merges_names_and_keeps_the_latest_reason() -> None:
    current = progress.Progress(
        waves=(progress.WaveProgress(name="w", failed_agents=("b", "c"),
                                     failure_reasons=(("b", "old"), ("c", "kept"))),)
    )  # fmt: skip
    updated = stepping.record_failures(current, wave="w", failures={"a": "x", "b": "y"})
    assert updated.wave("w").failed_agents == ("a", "b", "c")
    assert updated.wave("w").failure_reasons == (("a", "x"), ("b", "y"), ("c", "kept"))
    assert stepping.record_failures(current, wave="w", failures={}) is current


def test_a_failure_message_quotes_at_most_three_agents_reasons_each_bounded() -> None:
    agents = fleet()
    found = targeting.select_targets(
        spec=targeting.TargetSpec(), rules=residency.ResidencyRules(), fleet=agents.values(),
        model="m", version="v2",
    )  # fmt: skip
    one_wave = (targeting.WaveSpec(name="canary", max_unavailable=6),)
    waves = targeting.assign_waves(waves=one_wave, targeting=found)[0]
    canary = sorted(a.name for a in waves[0].agents)
    assert len(canary) == 6
    engines = {a: views.EngineRef(digest="d-v2", backend="ORT") for a in agents}
    current = progress.Progress(
        revision=intent().revision, version="v2", phase=Phase.PROGRESSING,
        waves=(progress.WaveProgress(name="canary", state=progress.WaveState.PROGRESSING,
                                     started_at=T0),),
    )  # fmt: skip
    long = {name: f"{name} says " + "x" * 5000 for name in canary}
    current = stepping.record_failures(current, wave="canary", failures=long)
    step = stepping.next_step(
        intent=intent(), waves=waves, engines=engines, current=current, now=T0 + S
    )
    failure = step.progress.failure
    assert failure is not None and failure.reason == "ActivationFailed"
    quoted = failure.message.split("; ")[1:]
    assert [q.split(": ", 1)[0] for q in quoted] == canary[: stepping.MAX_REASONS]
    assert all(len(q.split(": ", 1)[1]) == stepping.MAX_REASON_CHARS for q in quoted)


def test_compile_failure_stops_before_any_agent_and_recovers() -> None:
    step = stepping.compile_failed(
        intent=intent(), current=progress.Progress(), message="opset 99 unsupported", now=T0
    )
    assert step.progress.phase is Phase.FAILED
    assert step.progress.failure is not None
    assert step.progress.failure.reason == "CompileFailed"
    assert [e.reason for e in step.events] == ["RolloutStarted", "CompileFailed"]
    again = stepping.compile_failed(
        intent=intent(), current=step.progress, message="opset 99 unsupported", now=T0
    )
    assert again.events == ()  # no repeated event while nothing changed
    resumed = stepping.compile_recovered(step.progress)
    assert resumed.phase is Phase.PROGRESSING and resumed.failure is None
    sim = Sim(agents=fleet(), intent=intent(), current=resumed)
    assert sim.run().progress.phase is Phase.SUCCEEDED
