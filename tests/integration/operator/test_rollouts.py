"""Rollouts end to end: real API server, real operator process, six real agents."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Fixtures from this directory's conftest (Fleet, Operators, ...), typed loosely here.
Fleet = Any
Operators = Any
ModelFiles = Callable[[float], tuple[str, str]]
MakeRollout = Callable[..., dict[str, Any]]
Until = Callable[..., None]


def condition(body: dict[str, object], kind: str) -> dict[str, object] | None:
    status = body.get("status") or {}
    assert isinstance(status, dict)
    return next((c for c in status.get("conditions", []) if c["type"] == kind), None)


def test_three_waves_reach_ready_in_order_within_max_unavailable(
    *, fleet: Fleet, operators: Operators, model_files: ModelFiles, make_rollout: MakeRollout
) -> None:
    uri, sha = model_files(1.0)
    # Least privilege: the operator runs as a ServiceAccount bound to exactly the rules the
    # chart grants (`kube.permissions`); a missing permission fails this test.
    operators.start(kubeconfig=operators.least_privilege_kubeconfig())
    manifest = make_rollout(
        "resnet", namespace=fleet.namespace, model="resnet", version="1.0.0", uri=uri, sha256=sha
    )
    fleet.apply(manifest)
    result = fleet.kube.kubectl(
        "wait", "--for=condition=Ready", "mro/resnet", "-n", fleet.namespace, "--timeout=90s",
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{result.stderr}\n{operators.logs()}"
    body = fleet.get("mro", "resnet")
    status = body["status"]
    assert status["phase"] == "Succeeded"
    assert status["observedGeneration"] == body["metadata"]["generation"]
    assert status["ready"] == "6/6"
    assert [w["phase"] for w in status["waves"]] == ["Succeeded"] * 3
    assert all(a.active("resnet") == "1.0.0" for a in fleet.host.agents.values())

    engine = status["engines"][0]["digest"].removeprefix("sha256:")
    pushes = fleet.host.spy.completed(engine)
    # Every agent received the engine exactly once (agent-side record).
    assert sorted(r.agent for r in pushes) == sorted(fleet.host.agents)
    by_wave = {
        "canary": [r for r in pushes if r.agent.startswith("ew")],
        "eu": [r for r in pushes if r.agent.startswith("ec")],
        "us": [r for r in pushes if r.agent.startswith("ue")],
    }
    # Waves in order: a wave's pushes all start after the previous wave's finished.
    for earlier, later in (("canary", "eu"), ("eu", "us")):
        assert max(r.finished or 0 for r in by_wave[earlier]) < min(
            r.started for r in by_wave[later]
        )
    # maxUnavailable 1: the two pushes of eu-west and of eu-central never overlap.
    for wave in ("canary", "eu"):
        first, second = sorted(by_wave[wave], key=lambda r: r.started)
        assert (first.finished or 0) <= second.started
    ready = condition(body, "Ready")
    assert ready is not None and ready["status"] == "True"
    assert condition(body, "Progressing")["status"] == "False"  # type: ignore[index]
    reasons = [e["reason"] for e in fleet.events()]
    assert reasons.count("WavePassed") == 3
    assert "RolloutSucceeded" in reasons
    # Nothing the operator (or kopf under it) tried was refused by RBAC.
    assert "Forbidden" not in operators.started[0].log_path.read_text()


def test_failed_probe_in_wave_two_rolls_every_updated_agent_back(
    *,
    fleet: Fleet,
    operators: Operators,
    model_files: ModelFiles,
    make_rollout: MakeRollout,
    until: Until,
    probe_fails: str,
) -> None:
    host = fleet.host
    operators.start()
    uri, sha = model_files(2.0)
    fleet.apply(
        make_rollout(
            "detector", namespace=fleet.namespace, model="detector", version="1.0.0",
            uri=uri, sha256=sha,
        )
    )  # fmt: skip
    fleet.kube.kubectl(
        "wait", "--for=condition=Ready", "mro/detector", "-n", fleet.namespace, "--timeout=90s"
    )
    bad_uri, bad_sha = model_files(3.0)
    fleet.apply(
        make_rollout(
            "detector", namespace=fleet.namespace, model="detector", version=probe_fails,
            uri=bad_uri, sha256=bad_sha,
        )
    )  # fmt: skip

    def rolled_back() -> bool:
        return bool(fleet.get("mro", "detector").get("status", {}).get("phase") == "RolledBack")

    until(rolled_back, what="the rollback")
    # Every agent serves the previous version again; us-east was never touched.
    assert {a.agent_id: a.active("detector") for a in host.agents.values()} == dict.fromkeys(
        host.agents, "1.0.0"
    )
    assert all(probe_fails not in host.agents[a].versions("detector") for a in ("ue-0", "ue-1"))
    body = fleet.get("mro", "detector")
    degraded = condition(body, "Degraded")
    assert degraded is not None and degraded["status"] == "True"
    assert degraded["reason"] == "ActivationFailed"
    message = str(degraded["message"])
    assert "ec-1" in message and "maxFailed 0" in message and "failed=1" in message
    assert "failed its health probe" in message  # the agent's own reason, not only its name
    assert condition(body, "Ready")["status"] == "False"  # type: ignore[index]
    assert condition(body, "Stalled")["status"] == "True"  # type: ignore[index]
    assert body["status"]["previousVersion"] == "1.0.0"
    reasons = [e["reason"] for e in fleet.events()]
    assert {"WaveFailed", "RollbackStarted", "RolledBack"} <= set(reasons)
    # The spec is untouched (GitOps tools do not fight the rollback).
    assert body["spec"]["model"]["version"] == probe_fails
    assert json.dumps(body["spec"]).count(probe_fails) == 1


def _phase(fleet: Fleet, name: str) -> str | None:
    phase = (fleet.get("mro", name).get("status") or {}).get("phase")
    return str(phase) if phase else None


def _waves(fleet: Fleet, name: str) -> dict[str, str]:
    status = fleet.get("mro", name).get("status") or {}
    return {w["name"]: w["phase"] for w in status.get("waves", [])}


def test_leader_killed_mid_wave_standby_finishes_without_pushing_twice(
    *,
    fleet: Fleet,
    operators: Operators,
    model_files: ModelFiles,
    make_rollout: MakeRollout,
    until: Until,
) -> None:
    leader = operators.start("op-a")

    def holder() -> str | None:
        lease = fleet.get("lease", "edgewave-operator")
        identity = lease.get("spec", {}).get("holderIdentity")
        return str(identity) if identity else None

    until(lambda: _exists(fleet, kind="lease", name="edgewave-operator") and holder() == "op-a",
          what="op-a to lead")  # fmt: skip
    standby = operators.start("op-b")
    uri, sha = model_files(4.0)
    fleet.apply(
        make_rollout(
            "segmenter", namespace=fleet.namespace, model="segmenter", version="1.0.0",
            uri=uri, sha256=sha, healthGate={"windowSeconds": 2, "minSamples": 0},
        )
    )  # fmt: skip

    def eu_wave_started() -> bool:
        return any(r.agent.startswith("ec") for r in fleet.host.spy.records)

    until(eu_wave_started, what="the second wave's first push")
    leader.kill()  # SIGKILL: no clean-up, the Lease is not released
    until(lambda: holder() == "op-b", what="the standby to take the Lease")
    restarted = operators.start("op-a2")  # the killed replica comes back as a standby
    until(lambda: _phase(fleet, "segmenter") == "Succeeded", what="the rollout to finish")
    assert standby.alive() and restarted.alive()
    engine = fleet.get("mro", "segmenter")["status"]["engines"][0]["digest"].removeprefix("sha256:")
    spy = fleet.host.spy
    # Agent-side: every agent stored the engine exactly once.
    assert {agent: spy.count(engine, agent) for agent in fleet.host.agents} == dict.fromkeys(
        fleet.host.agents, 1
    )
    assert all(a.active("segmenter") == "1.0.0" for a in fleet.host.agents.values())


def _exists(fleet: Fleet, *, kind: str, name: str) -> bool:
    result = fleet.kube.kubectl("get", kind, name, "-n", fleet.namespace, check=False)
    return bool(result.returncode == 0)


def test_new_version_supersedes_a_running_rollout(
    *,
    fleet: Fleet,
    operators: Operators,
    model_files: ModelFiles,
    make_rollout: MakeRollout,
    until: Until,
) -> None:
    operators.start()
    old_uri, old_sha = model_files(5.0)
    fleet.apply(
        make_rollout(
            "ranker", namespace=fleet.namespace, model="ranker", version="1.0.0",
            uri=old_uri, sha256=old_sha, pauseBetweenWavesSeconds=600,
        )
    )  # fmt: skip
    until(lambda: _waves(fleet, "ranker").get("canary") == "Succeeded", what="the canary wave")
    old_engine = fleet.get("mro", "ranker")["status"]["engines"][0]["digest"]
    new_uri, new_sha = model_files(6.0)
    fleet.apply(
        make_rollout(
            "ranker", namespace=fleet.namespace, model="ranker", version="1.1.0",
            uri=new_uri, sha256=new_sha,
        )
    )  # fmt: skip
    fleet.kube.kubectl(
        "wait", "--for=condition=Ready", "mro/ranker", "-n", fleet.namespace, "--timeout=90s"
    )
    body = fleet.get("mro", "ranker")
    assert body["status"]["currentVersion"] == "1.1.0"
    assert all(a.active("ranker") == "1.1.0" for a in fleet.host.agents.values())
    # The superseded version never went past its first wave.
    old_pushes = fleet.host.spy.completed(old_engine.removeprefix("sha256:"))
    assert sorted(r.agent for r in old_pushes) == ["ew-0", "ew-1"]
    reasons = [e["reason"] for e in fleet.events()]
    assert "Superseded" in reasons


def test_paused_rollout_stops_before_the_next_batch(
    *,
    fleet: Fleet,
    operators: Operators,
    model_files: ModelFiles,
    make_rollout: MakeRollout,
    until: Until,
) -> None:
    operators.start()
    uri, sha = model_files(7.0)
    fleet.apply(
        make_rollout(
            "tagger", namespace=fleet.namespace, model="tagger", version="1.0.0",
            uri=uri, sha256=sha, paused=True,
        )
    )  # fmt: skip
    until(lambda: _phase(fleet, "tagger") == "Paused", what="the rollout to pause")
    assert not any(a.versions("tagger") for a in fleet.host.agents.values())
    fleet.apply(
        make_rollout(
            "tagger", namespace=fleet.namespace, model="tagger", version="1.0.0",
            uri=uri, sha256=sha, paused=False,
        )
    )  # fmt: skip
    fleet.kube.kubectl(
        "wait", "--for=condition=Ready", "mro/tagger", "-n", fleet.namespace, "--timeout=90s"
    )


def test_an_agent_changed_by_hand_is_repaired_without_a_second_push(
    *,
    fleet: Fleet,
    operators: Operators,
    model_files: ModelFiles,
    make_rollout: MakeRollout,
    until: Until,
) -> None:
    operators.start()
    for version, scale in (("1.0.0", 8.0), ("2.0.0", 9.0)):
        uri, sha = model_files(scale)
        fleet.apply(
            make_rollout(
                "pose", namespace=fleet.namespace, model="pose", version=version, uri=uri,
                sha256=sha, waves=[{"name": "all", "maxUnavailable": "100%"}],
            )
        )  # fmt: skip
        until(
            lambda v=version: (
                (fleet.get("mro", "pose").get("status") or {}).get("currentVersion") == v
                and _phase(fleet, "pose") == "Succeeded"
            ),
            what=f"{version} everywhere",
        )
    engine = fleet.get("mro", "pose")["status"]["engines"][0]["digest"].removeprefix("sha256:")
    agent = fleet.host.agents["ew-0"]
    core = agent.server.core
    core.serving.rollback("pose")  # someone rolls the agent back by hand
    assert agent.active("pose") == "1.0.0"
    until(lambda: agent.active("pose") == "2.0.0", what="the operator to repair ew-0")
    assert fleet.host.spy.count(engine, "ew-0") == 1  # the engine was still there: no push
    assert "DriftRepair" in [e["reason"] for e in fleet.events()]


def test_without_a_central_builder_agents_build_their_own_engines(
    *,
    fleet: Fleet,
    operators: Operators,
    model_files: ModelFiles,
    make_rollout: MakeRollout,
) -> None:
    host = fleet.host
    # An operator without central builders (a slim image without toolchains): every target
    # builds its own engine from the ONNX model pushed to it.
    odd = host.start("odd-0", region="eu-west", jurisdiction="EU")
    try:
        manifest = fleet.manifest(odd)
        manifest["metadata"]["labels"]["only"] = "odd"
        fleet.apply(manifest)
        operators.start(central_builds="false")
        uri, sha = model_files(14.0)
        rollout = make_rollout(
            "odd", namespace=fleet.namespace, model="odd", version="1.0.0", uri=uri, sha256=sha,
            waves=[{"name": "all", "maxUnavailable": 1}],
        )  # fmt: skip
        rollout["spec"]["targets"]["selector"]["matchLabels"]["only"] = "odd"
        fleet.apply(rollout)
        fleet.kube.kubectl(
            "wait", "--for=condition=Ready", "mro/odd", "-n", fleet.namespace, "--timeout=90s"
        )
        [engine] = fleet.get("mro", "odd")["status"]["engines"]
        assert engine["builtOn"] == "Agent" and engine["agent"] == fleet.name("odd-0")
        digest = engine["digest"].removeprefix("sha256:")
        core = odd.server.core
        assert core.store.has(digest)  # the agent holds what it built ...
        assert host.spy.count(digest, "odd-0") == 0  # ... which was never pushed to it
        assert host.spy.count(sha, "odd-0") == 1  # the ONNX model was, once
        assert odd.active("odd") == "1.0.0"
    finally:
        fleet.kube.kubectl("delete", "edgeagent", fleet.name("odd-0"), "--wait=false")
        host.call(odd.server.stop(grace=0))
        del host.agents["odd-0"]
