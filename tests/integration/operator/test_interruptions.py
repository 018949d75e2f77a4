"""A running rollout interrupted: paused in the middle, and an agent lost in the middle.

Real API server, real operator process, real agents; what is asserted is what a user and
the agents see (phases, waves, conditions, events, the agents' own record of pushes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edgewave_agent import testing

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Fleet = Any
Operators = Any
ModelFiles = Callable[[float], tuple[str, str]]
MakeRollout = Callable[..., dict[str, Any]]
Until = Callable[..., None]

WAVES = [
    {"name": "canary", "regions": ["eu-west"], "maxUnavailable": 1},
    {"name": "eu", "regions": ["eu-central"], "maxUnavailable": 1},
    {"name": "us", "regions": ["us-east"], "maxUnavailable": 2},
]
QUIET_SECONDS = 6.0
"""How long a paused rollout is watched for pushes: three reconcile periods (2 s here)."""


def _status(fleet: Fleet, name: str) -> dict[str, Any]:
    status: dict[str, Any] = fleet.get("mro", name).get("status") or {}
    return status


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


def _waves(status: dict[str, Any]) -> dict[str, str]:
    return {wave["name"]: wave["phase"] for wave in status.get("waves", [])}


def _reasons(fleet: Fleet) -> list[str]:
    return [str(e["reason"]) for e in fleet.events()]


def test_pausing_mid_rollout_stops_new_pushes_and_resuming_continues_from_that_wave(
    *,
    fleet: Fleet,
    operators: Operators,
    model_files: ModelFiles,
    make_rollout: MakeRollout,
    until: Until,
) -> None:
    host = fleet.host
    spy = host.spy
    operators.start()
    uri, sha = model_files(41.0)

    def rollout(*, paused: bool) -> dict[str, Any]:
        return make_rollout(
            "midway", namespace=fleet.namespace, model="midway", version="1.0.0", uri=uri,
            sha256=sha, waves=WAVES, paused=paused,
            healthGate={"windowSeconds": 2, "minSamples": 0, "maxErrorRate": 0.5},
        )  # fmt: skip

    before = len(spy.records)
    fleet.apply(rollout(paused=False))
    # The first push of the canary wave has started: pause now, while the wave runs.
    until(
        lambda: any(r.agent.startswith("ew") for r in spy.records[before:]),
        what="the canary wave's first push",
    )
    fleet.apply(rollout(paused=True))
    until(lambda: _status(fleet, "midway").get("phase") == "Paused", what="the pause")
    status = _status(fleet, "midway")
    waves = _waves(status)
    assert waves["canary"] in ("Progressing", "Verifying", "Succeeded"), waves
    assert waves["eu"] == waves["us"] == "Pending", waves
    assert _condition(status, "Progressing")["reason"] == "PausedInSpec"
    # While paused, nothing new is pushed, to any agent, however long it stays paused.
    seen = len(spy.records)
    deadline = time.monotonic() + QUIET_SECONDS
    while time.monotonic() < deadline:
        assert len(spy.records) == seen, [r.agent for r in spy.records[seen:]]
        assert _status(fleet, "midway").get("phase") == "Paused"
        time.sleep(0.5)
    paused_pushes = [r.agent for r in spy.records[before:]]
    assert paused_pushes and all(agent.startswith("ew") for agent in paused_pushes)
    resumed_at = time.time()
    fleet.apply(rollout(paused=False))
    fleet.kube.kubectl(
        "wait", "--for=condition=Ready", "mro/midway", "-n", fleet.namespace, "--timeout=90s"
    )
    engine = _status(fleet, "midway")["engines"][0]["digest"].removeprefix("sha256:")
    # Every agent got the engine exactly once: nothing pushed before the pause is pushed again.
    assert {a: spy.count(engine, a) for a in host.agents} == dict.fromkeys(host.agents, 1)
    # The rollout went on from the wave it was in: every later push started after the resume.
    later = [r for r in spy.completed(engine) if r.agent not in paused_pushes]
    assert later and all(r.started >= resumed_at for r in later)
    reasons = _reasons(fleet)
    assert reasons.count("Paused") == 1 and reasons.count("Resumed") == 1
    # One WaveStarted per wave: the canary wave was not started over.
    assert reasons.count("WaveStarted") == 3 and reasons.count("WavePassed") == 3
    assert all(a.active("midway") == "1.0.0" for a in host.agents.values())


@pytest.fixture
def lost_agent(
    fleet: Fleet, tmp_path: Path
) -> Iterator[tuple[testing.AgentProcess, SimpleNamespace]]:
    """`edgewave-agent serve` in a process of its own (in eu-central), for the test to kill."""
    data_dir = tmp_path / "ec-9"
    config = testing.agent_config(
        pki_=fleet.host.pki, data_dir=data_dir, agent_id="ec-9", region="eu-central",
        zone="eu-central-a", jurisdiction="EU", health_window_seconds=5.0,
    )  # fmt: skip
    process = testing.AgentProcess(config=config, workdir=tmp_path).start()
    agent = SimpleNamespace(
        agent_id="ec-9", endpoint=process.control, region="eu-central", jurisdiction="EU"
    )
    fleet.apply(fleet.manifest(agent))
    yield process, agent
    process.kill()


def test_an_agent_killed_mid_wave_is_reported_and_the_rollout_ends_at_its_unreachable_timeout(
    *,
    fleet: Fleet,
    operators: Operators,
    model_files: ModelFiles,
    make_rollout: MakeRollout,
    until: Until,
    lost_agent: tuple[testing.AgentProcess, SimpleNamespace],
) -> None:
    host = fleet.host
    spy = host.spy
    process, agent = lost_agent
    lost = fleet.name(agent.agent_id)
    operators.start()
    uri, sha = model_files(42.0)
    before = len(spy.records)
    fleet.apply(
        make_rollout(
            "lost", namespace=fleet.namespace, model="lost", version="1.0.0", uri=uri,
            sha256=sha, waves=WAVES, progressDeadlineSeconds=15, unreachableTimeoutSeconds=15,
        )
    )  # fmt: skip
    # Killed once the rollout runs (the canary wave's first push), so it is certainly not
    # updated yet: killing it at its own wave's first push raced its update on an idle
    # machine, where the eu wave updates all three agents within a second.
    until(
        lambda: any(r.agent.startswith("ew") for r in spy.records[before:]),
        what="the canary wave's first push",
    )
    process.kill()  # SIGKILL, mid-rollout: its wave has not reached it yet

    # The operator notices: the agent is not Reachable, with the error it got.
    def reachable() -> dict[str, Any]:
        status = fleet.get("edgeagent", lost, namespaced=False).get("status") or {}
        return _condition(status, "Reachable")

    until(lambda: reachable().get("status") == "False", what=f"{lost} to be reported unreachable")
    assert reachable()["message"], reachable()
    # The rollout does not hang on it: an offline agent waits out unreachableTimeoutSeconds
    # (not the progress deadline, which is for connected agents that do not answer), then
    # counts against maxFailed (0 here), so the wave fails, naming it.
    until(
        lambda: _status(fleet, "lost").get("phase") in ("RolledBack", "Failed"),
        what="the rollout to give up on the lost agent",
        timeout=120,
    )
    status = _status(fleet, "lost")
    degraded = _condition(status, "Degraded")
    assert degraded["status"] == "True", degraded
    assert degraded["reason"] == "AgentsOffline", degraded
    message = str(degraded["message"])
    assert lost in message and "offline past unreachableTimeoutSeconds (15 s)" in message
    assert "offline=1" in message and "maxFailed=0" in message, message
    assert _waves(status)["eu"] == "Failed" and _waves(status)["us"] == "Pending"
    # The agents it had updated are rolled back; us-east was never touched.
    assert not [r for r in spy.records[before:] if r.agent.startswith("ue")]
    assert all(a.active("lost") is None for a in host.agents.values())
    failed = [e for e in fleet.events() if e["reason"] == "WaveFailed"]
    assert failed and lost in failed[-1]["message"], [e["message"] for e in failed]
    assert "RolledBack" in _reasons(fleet)
