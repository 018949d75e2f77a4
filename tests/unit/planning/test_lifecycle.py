"""Requests, manual gates and activation windows, decided without a cluster.

Each case drives `reconciling.decide` over several turns with `test_reconciling.Fleet`
(agents that do what the actions ask) and checks what a request, a manual gate or a
window does: the phase, the actions, the Paused condition and `status.control`, and
that an answered request stays answered after an operator restart (the status read
back) and when the unchanged manifest is applied again.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

import pytest

from edgewave_api import conditions as api_conditions
from edgewave_api import controls, modelrollout
from edgewave_operator.planning import gates, lifecycle, progress, reconciling, stepping
from tests.unit.planning import test_reconciling as base

Phase = progress.Phase
T0 = base.T0
TRUE, FALSE = api_conditions.ConditionStatus.TRUE, api_conditions.ConditionStatus.FALSE


def rollout(
    version: str = "v2",
    *,
    generation: int = 1,
    manual: tuple[str, ...] = (),
    window: dict[str, Any] | None = None,
    request: dict[str, Any] | str | None = None,
    auto_rollback: bool = True,
    pause_seconds: int = 0,
) -> modelrollout.ModelRollout:
    body = base.rollout(version, generation=generation).model_dump(by_alias=True, mode="json")
    strategy = body["spec"]["strategy"]
    for wave in strategy["waves"]:
        wave["approval"] = "Manual" if wave["name"] in manual else "Automatic"
    strategy["activationWindow"] = window
    strategy["autoRollback"] = auto_rollback
    strategy["pauseBetweenWavesSeconds"] = pause_seconds
    if request is not None:
        value = request if isinstance(request, str) else json.dumps(request)
        body["metadata"]["annotations"] = {controls.ANNOTATION: value}
    return modelrollout.ModelRollout.model_validate(body)


def ask(action: str, nonce: str, *, generation: int = 1, **extra: Any) -> dict[str, Any]:
    return {"action": action, "nonce": nonce, "generation": generation, **extra}


@dataclasses.dataclass
class Run(base.Fleet):
    """`base.Fleet` that also honours staging: a staged agent holds the version, inactive."""

    spec: dict[str, Any] = dataclasses.field(default_factory=dict)

    def turn(self, **kwargs: Any) -> reconciling.Decision:
        staged: list[str] = []
        original = self.serve

        def serve(name: str, version: str) -> None:
            original(name, version)

        decision = reconciling.decide(self.snapshot(**kwargs))
        # Replay what base.Fleet.turn does, except that staging does not activate.
        for action in decision.actions:
            if isinstance(action, stepping.UpdateBatch):
                staged += [u.agent for u in action.updates if u.stage]
        self.decisions.append(decision)
        self.memory, self.outcomes = decision.memory, reconciling.Outcomes()
        observation = None
        for action in decision.actions:
            if isinstance(action, stepping.UpdateBatch):
                for update in action.updates:
                    if update.stage:
                        self.stage(update.agent, update.version)
                    else:
                        serve(update.agent, update.version)
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
                    serve(revert.agent, revert.to_version)
        self.outcomes = reconciling.Outcomes(observation=observation)
        if not decision.actions and decision.wake_at is not None:
            self.now = max(self.now, decision.wake_at)
        self.now += base.S
        return decision

    def stage(self, name: str, version: str) -> None:
        old = self.agents[name]
        staged = base.held(version, base.STAGED)
        self.agents[name] = dataclasses.replace(old, models=(*old.models, staged))

    def restart(self) -> None:
        """The operator restarts: memory lost, the status written is all that is left."""
        last = self.decisions[-1]
        self.rollout = self.rollout.model_copy(update={"status": last.status})
        self.memory = None

    def ask(self, request: dict[str, Any] | str, **spec: Any) -> reconciling.Decision:
        self.rollout = rollout(request=request, **spec).model_copy(
            update={"status": self.decisions[-1].status if self.decisions else None}
        )
        return self.turn()

    def until(self, phase: Phase, turns: int = 30) -> reconciling.Decision:
        for _ in range(turns):
            decision = self.turn()
            if decision.step.progress.phase is phase and not decision.actions:
                return decision
        raise AssertionError(f"never reached {phase}: {self.reasons()}")


def condition(decision: reconciling.Decision, kind: str) -> api_conditions.Condition:
    return base.condition(decision, kind)


def control(decision: reconciling.Decision) -> modelrollout.ControlStatus:
    assert decision.status.control is not None
    return decision.status.control


def events(decision: reconciling.Decision) -> list[str]:
    return [n.reason for n in decision.notices if n.agent is None]


# -- requests --------------------------------------------------------------------------


def test_pause_holds_the_next_wave_and_resume_continues_from_it() -> None:
    run = Run(base.fleet(), rollout())
    assert base.updated(run.turn()) == ["w-0"]
    paused = run.ask(ask("pause", "n1"))
    assert "PauseRequested" in events(paused)
    held = run.until(Phase.PAUSED)
    assert held.step.progress.wave("canary").state is progress.WaveState.PASSED
    assert condition(held, "Paused").status is TRUE
    assert condition(held, "Paused").reason == "PausedByRequest"
    answer = control(held).last_request
    assert control(held).paused and answer is not None
    assert answer.result is modelrollout.RequestResult.APPLIED
    # An operator restart and the same manifest applied again: still paused, no new answer.
    run.restart()
    again = run.turn()
    assert again.step.progress.phase is Phase.PAUSED and "PauseRequested" not in events(again)
    resumed = run.ask(ask("resume", "n2"))
    assert base.updated(resumed) == ["c-0", "c-1"]
    assert "ResumeRequested" in events(resumed)
    assert run.until(Phase.SUCCEEDED).status.control is not None


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (ask("promote", "p1"), "no wave awaits approval"),
        (ask("resume", "r1"), "not paused by request"),
        (ask("abort", "a1", generation=7), "the spec changed since the request"),
        (ask("retry", "t1"), "no failed wave to retry"),
        ("{not json", "edgewave.io/request is not JSON"),
        (json.dumps(ask("explode", "x1")), "edgewave.io/request: action:"),
        (json.dumps(ask("pause", "bad nonce!")), "edgewave.io/request: nonce:"),
        (json.dumps(ask("undo", "u1", toVersion="x" * 2000)), "longer than 1024 bytes"),
        (json.dumps(ask("undo", "u2", toVersion="../etc")), "edgewave.io/request: toVersion:"),
    ],
)
def test_a_request_that_cannot_apply_is_refused_in_one_line(
    request_: dict[str, Any] | str, why: str
) -> None:
    run = Run(base.fleet(), rollout())
    run.turn()
    refused = run.ask(request_)
    (notice,) = [n for n in refused.notices if n.reason == "RequestRefused"]
    assert why in notice.message and "\n" not in notice.message
    answer = control(refused).last_request
    assert answer is not None and answer.result is modelrollout.RequestResult.REFUSED
    # Answered once: the next turn does not refuse it again; the rollout goes on.
    assert "RequestRefused" not in events(run.turn())
    assert run.until(Phase.SUCCEEDED).step.progress.phase is Phase.SUCCEEDED


def test_abort_rolls_back_and_stays_aborted_across_a_restart_and_a_reapply() -> None:
    run = Run(base.fleet(), rollout())
    run.turn()
    aborted = run.ask(ask("abort", "a1"))
    assert "AbortRequested" in events(aborted)
    (batch,) = aborted.actions
    assert isinstance(batch, stepping.RevertBatch)
    assert [(r.agent, r.to_version) for r in batch.reverts] == [("w-0", "v1")]
    done = run.until(Phase.ROLLED_BACK)
    assert condition(done, "Degraded").reason == "Aborted"
    assert all(a.active_version("m") == "v1" for a in run.agents.values())
    run.restart()
    run.rollout = rollout().model_copy(update={"status": run.rollout.status})  # re-applied
    for _ in range(3):
        after = run.turn()
        assert after.actions == () and after.step.progress.phase is Phase.ROLLED_BACK
    # A new version (a spec change) starts again.
    run.rollout = rollout("v3", generation=2).model_copy(update={"status": after.status})
    assert base.updated(run.turn()) == ["w-0"]


def test_retry_restarts_from_the_failed_wave() -> None:
    run = Run(base.fleet(), rollout(auto_rollback=False))
    run.turn()
    run.turn()  # the canary's gate passes
    run.error_rate = 0.5
    failed = run.until(Phase.FAILED)
    assert failed.step.progress.wave("rest").state is progress.WaveState.FAILED
    run.error_rate = 0.0
    retried = run.ask(ask("retry", "t1"), auto_rollback=False)
    assert "RetryRequested" in events(retried)
    progress_ = retried.step.progress
    assert progress_.wave("canary").state is progress.WaveState.PASSED  # kept
    assert progress_.phase in (Phase.PROGRESSING,)
    assert run.until(Phase.SUCCEEDED).step.progress.failure is None


def test_undo_goes_back_wave_by_wave_and_stays() -> None:
    run = Run(base.fleet(), rollout())
    run.until(Phase.SUCCEEDED)
    refused = run.ask(ask("undo", "u0"))  # the first rollout of the model: no previous one
    assert "pass --to-version" in control(refused).last_request.message  # type: ignore[union-attr]
    first = run.ask(ask("undo", "u1", toVersion="v1"))
    (batch,) = first.actions
    assert isinstance(batch, stepping.RevertBatch)
    assert [r.agent for r in batch.reverts] == ["w-0"]  # the canary wave first
    second = run.turn()
    assert [r.agent for a in second.actions for r in a.reverts] == ["c-0", "c-1"]  # type: ignore[union-attr]
    done = run.until(Phase.ROLLED_BACK)
    assert "Undone" in run.reasons()
    assert control(done).undo_to_version == "v1"
    assert all(a.active_version("m") == "v1" for a in run.agents.values())
    run.restart()
    assert run.turn().actions == ()
    restarted = run.ask(ask("restart", "s1"))
    assert "RestartRequested" in events(restarted)
    assert base.updated(restarted) == ["w-0"]


def test_undo_defaults_to_the_previous_version_and_refuses_the_current_one() -> None:
    current = progress.Progress(
        revision="v3", version="v3", previous_version="v2", phase=Phase.SUCCEEDED
    )

    def why(**extra: Any) -> str | None:
        request = controls.Request.model_validate(ask("undo", "u", **extra))
        return lifecycle.refusal(request, current=current, generation=1, spec_paused=False)

    assert why() is None
    assert (
        lifecycle.apply(controls.Request.model_validate(ask("undo", "u")), current=current, now=T0)[
            0
        ].undo_to
        == "v2"
    )
    assert why(toVersion="v3") == "the rollout is already about v3"


# -- manual gates ----------------------------------------------------------------------


def test_a_manual_wave_waits_for_promote_without_failing() -> None:
    run = Run(base.fleet(), rollout(manual=("rest",)))
    waiting = run.until(Phase.PAUSED)
    paused = condition(waiting, "Paused")
    assert (paused.status, paused.reason) == (TRUE, "AwaitingApproval")
    assert "wave rest" in paused.message
    assert control(waiting).awaiting_approval == "rest"
    # Waiting is not failing: kstatus reads neither Reconciling nor Stalled.
    assert condition(waiting, "Stalled").status is FALSE
    assert condition(waiting, "Reconciling").status is FALSE
    assert condition(waiting, "Degraded").status is FALSE
    assert run.reasons().count("AwaitingApproval") == 1
    assert run.turn().actions == ()
    run.restart()  # the operator restarts while it waits: promote still applies
    promoted = run.ask(ask("promote", "p1"), manual=("rest",))
    assert "Promoted" in events(promoted)
    assert base.updated(promoted) == ["c-0", "c-1"]
    done = run.until(Phase.SUCCEEDED)
    assert condition(done, "Paused").status is FALSE
    assert control(done).approved_waves == ["rest"]


def test_promote_full_skips_every_manual_gate_and_pause() -> None:
    run = Run(base.fleet(), rollout(manual=("canary", "rest"), pause_seconds=3600))
    waiting = run.turn()
    assert control(waiting).awaiting_approval == "canary"
    run.ask(ask("promote", "f1", full=True), manual=("canary", "rest"), pause_seconds=3600)
    done = run.until(Phase.SUCCEEDED)
    assert "AwaitingApproval" not in events(done)
    assert done.step.progress.finished_at is not None
    assert done.step.progress.finished_at - T0 < datetime.timedelta(seconds=3600)


# -- activation windows ----------------------------------------------------------------

# Every day at 02:00 in Berlin for an hour; T0 (2026-03-01 00:00 UTC) is 01:00 there.
NIGHTLY = {"schedule": "0 2 * * *", "durationSeconds": 3600, "timeZone": "Europe/Berlin"}
OPENS = datetime.datetime(2026, 3, 1, 1, 0, tzinfo=datetime.UTC)


def test_outside_the_window_engines_are_staged_and_nothing_activates() -> None:
    run = Run(base.fleet(), rollout(window=NIGHTLY))
    first = run.turn()
    staged = [u for a in first.actions if isinstance(a, stepping.UpdateBatch) for u in a.updates]
    assert sorted(u.agent for u in staged) == ["c-0", "c-1", "w-0"]  # every wave, ahead
    assert all(u.stage for u in staged)
    assert first.step.progress.phase is Phase.PAUSED
    paused = condition(first, "Paused")
    assert paused.reason == "OutsideActivationWindow"
    assert "activations resume at 2026-03-01T01:00:00Z" in paused.message
    assert control(first).next_activation_at == OPENS
    assert first.wake_at == OPENS
    again = run.turn()  # staged already: nothing more to push, wait for the window
    assert again.actions == ()
    assert all(a.active_version("m") == "v1" for a in run.agents.values())


def test_inside_the_window_activation_proceeds_wave_by_wave() -> None:
    run = Run(base.fleet(), rollout(window=NIGHTLY))
    run.turn()
    run.now = OPENS + base.S
    opened = run.turn()
    assert base.updated(opened) == ["w-0"]
    assert all(not u.stage for a in opened.actions if isinstance(a, stepping.UpdateBatch)
               for u in a.updates)  # fmt: skip
    assert run.until(Phase.SUCCEEDED).step.progress.phase is Phase.SUCCEEDED


def test_a_window_that_closes_mid_rollout_stops_new_activations() -> None:
    run = Run(base.fleet(), rollout(window=NIGHTLY))
    run.now = OPENS + datetime.timedelta(minutes=59, seconds=55)  # 5 s of window left
    assert base.updated(run.turn()) == ["w-0"]
    run.turn()  # the canary's gate (10 s) passes; the window has closed meanwhile
    closed = run.until(Phase.PAUSED)
    assert base.updated(closed) == []
    assert condition(closed, "Paused").reason == "OutsideActivationWindow"
    tomorrow = OPENS + datetime.timedelta(days=1)
    assert control(closed).next_activation_at == tomorrow
    assert closed.step.progress.wave("canary").state is progress.WaveState.PASSED
    assert [a.name for a in run.agents.values() if a.active_version("m") == "v2"] == ["w-0"]
    run.now = tomorrow
    assert base.updated(run.turn()) == ["c-0", "c-1"]


def test_a_region_with_its_own_window_activates_in_it() -> None:
    window = {**NIGHTLY, "regions": [
        {"regions": ["eu-central"], "schedule": "0 * * * *", "durationSeconds": 600},
    ]}  # fmt: skip
    run = Run(base.fleet(), rollout(window=window))
    run.now = OPENS + base.S
    assert base.updated(run.turn()) == ["w-0"]  # Berlin's 02:00 window is open
    run.now = OPENS + datetime.timedelta(minutes=30)  # eu-central's hourly 10 min are over
    run.turn()
    waiting = run.until(Phase.PAUSED)
    assert control(waiting).next_activation_at == OPENS + datetime.timedelta(hours=1)
