"""People acting on rollouts: `edgewave rollout ...` against a real API server, a real
operator process and six real agents; manual gates and an activation window.

Each command runs as people run it (the installed `edgewave` script, and once as the
kubectl plugin) and is checked by what the agents hold (agent-side push records, active
versions), the rollout's status and events.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Fleet = Any
Operators = Any
ModelFiles = Callable[[float], tuple[str, str]]
MakeRollout = Callable[..., dict[str, Any]]
Until = Callable[..., None]
BIN = Path(sys.executable).parent
MANUAL_EU = [
    {"name": "canary", "regions": ["eu-west"], "maxUnavailable": 1},
    {"name": "eu", "regions": ["eu-central"], "maxUnavailable": 1, "approval": "Manual"},
    {"name": "us", "regions": ["us-east"], "maxUnavailable": 2},
]


def edgewave(fleet: Fleet, *args: str, plugin: bool = False) -> subprocess.CompletedProcess[str]:
    """`edgewave ARGS -n NAMESPACE` (or `kubectl edgewave ...`), as a person runs it."""
    env = {**fleet.kube.environment(), "PATH": f"{BIN}{os.pathsep}{fleet.kube.bin_dir}"}
    command = (
        [str(fleet.kube.bin_dir / "kubectl"), "edgewave"] if plugin else [str(BIN / "edgewave")]
    )
    return subprocess.run(
        [*command, *args, "-n", fleet.namespace],
        capture_output=True, text=True, env=env, timeout=150, check=False,
    )  # fmt: skip


def status(fleet: Fleet, name: str) -> dict[str, Any]:
    found: dict[str, Any] = fleet.get("mro", name).get("status") or {}
    return found


def condition(fleet: Fleet, name: str, kind: str) -> dict[str, Any]:
    found = next((c for c in status(fleet, name).get("conditions", []) if c["type"] == kind), None)
    return found or {}


def versions(fleet: Fleet, model: str) -> dict[str, str | None]:
    return {a.agent_id: a.active(model) for a in fleet.host.agents.values()}


def wait_condition(fleet: Fleet, name: str, kind: str, *, timeout: int = 90) -> None:
    result = fleet.kube.kubectl(
        "wait", f"--for=condition={kind}", f"mro/{name}", "-n", fleet.namespace,
        f"--timeout={timeout}s", check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def wave_started(fleet: Fleet, name: str) -> list[str]:
    return sorted(
        e["message"].split()[1]
        for e in fleet.events()
        if e["reason"] == "WaveStarted" and e["involvedObject"]["name"] == name
        for _ in range(int(e.get("count") or 1))
    )


def test_promote_passes_a_manual_gate_pause_stops_pushes_resume_continues(
    *, fleet: Fleet, operators: Operators, model_files: ModelFiles, make_rollout: MakeRollout,
    until: Until,
) -> None:  # fmt: skip
    operators.start()
    uri, sha = model_files(11.0)
    fleet.apply(
        make_rollout(
            "gated", namespace=fleet.namespace, model="gated", version="1.0.0", uri=uri,
            sha256=sha, waves=MANUAL_EU, pauseBetweenWavesSeconds=30,
        )
    )  # fmt: skip
    wait_condition(fleet, "gated", "Paused")
    paused = condition(fleet, "gated", "Paused")
    assert paused["reason"] == "AwaitingApproval" and "wave eu" in paused["message"]
    assert status(fleet, "gated")["control"]["awaitingApproval"] == "eu"
    assert condition(fleet, "gated", "Stalled")["status"] == "False"  # waiting is not failing
    held = versions(fleet, "gated")
    assert {k: v for k, v in held.items() if v} == {"ew-0": "1.0.0", "ew-1": "1.0.0"}

    refused = edgewave(fleet, "rollout", "resume", "gated")
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0
    assert "wave eu awaits approval" in refused.stderr

    promoted = edgewave(fleet, "rollout", "promote", "gated", plugin=True)
    assert promoted.returncode == 0, promoted.stderr
    assert "approved wave eu" in promoted.stdout

    # The pause between eu and us (30 s) leaves time to pause before us starts.
    until(lambda: all(versions(fleet, "gated")[a] for a in ("ec-0", "ec-1")), what="wave eu")
    pause = edgewave(fleet, "rollout", "pause", "gated")
    assert pause.returncode == 0, pause.stderr
    assert "paused before the next batch" in pause.stdout
    until(lambda: condition(fleet, "gated", "Paused").get("reason") == "PausedByRequest",
          what="the pause")  # fmt: skip
    pushes = len(fleet.host.spy.records)
    time.sleep(8)  # several reconcile periods: nothing new may start
    assert len(fleet.host.spy.records) == pushes
    assert versions(fleet, "gated")["ue-0"] is None and versions(fleet, "gated")["ue-1"] is None
    again = edgewave(fleet, "rollout", "promote", "gated")
    assert again.returncode == 1 and "no wave awaits approval" in again.stderr

    resumed = edgewave(fleet, "rollout", "resume", "gated")
    assert resumed.returncode == 0, resumed.stderr
    wait_condition(fleet, "gated", "Ready")
    assert set(versions(fleet, "gated").values()) == {"1.0.0"}
    control = status(fleet, "gated")["control"]
    assert "awaitingApproval" not in control and control["paused"] is False
    assert control["approvedWaves"] == ["eu"]
    assert wave_started(fleet, "gated") == ["canary", "eu", "us"]  # no wave started twice
    engine = status(fleet, "gated")["engines"][0]["digest"].removeprefix("sha256:")
    assert {a: fleet.host.spy.count(engine, a) for a in fleet.host.agents} == dict.fromkeys(
        fleet.host.agents, 1
    )
    watch = edgewave(fleet, "status", "gated", "--watch", "--interval", "0.5")
    assert watch.returncode == 0 and "phase Succeeded" in watch.stdout  # piped: ends settled


def test_abort_rolls_back_and_stays_aborted_across_a_restart_and_a_reapply(
    *, fleet: Fleet, operators: Operators, model_files: ModelFiles, make_rollout: MakeRollout,
    until: Until,
) -> None:  # fmt: skip
    first = operators.start("op-a")
    uri, sha = model_files(12.0)
    fleet.apply(
        make_rollout("halted", namespace=fleet.namespace, model="halted", version="1.0.0",
                     uri=uri, sha256=sha)
    )  # fmt: skip
    wait_condition(fleet, "halted", "Ready")
    new_uri, new_sha = model_files(13.0)
    manifest = make_rollout(
        "halted", namespace=fleet.namespace, model="halted", version="2.0.0", uri=new_uri,
        sha256=new_sha, waves=MANUAL_EU,
    )  # fmt: skip
    fleet.apply(manifest)
    until(lambda: condition(fleet, "halted", "Paused").get("reason") == "AwaitingApproval",
          what="the manual gate")  # fmt: skip
    assert versions(fleet, "halted")["ew-0"] == "2.0.0"

    aborted = edgewave(fleet, "rollout", "abort", "halted")
    assert aborted.returncode == 0, aborted.stderr
    assert "aborted" in aborted.stdout
    until(lambda: status(fleet, "halted").get("phase") == "RolledBack", what="the rollback")
    assert set(versions(fleet, "halted").values()) == {"1.0.0"}
    assert condition(fleet, "halted", "Degraded")["reason"] == "Aborted"
    engine = status(fleet, "halted")["engines"][0]["digest"].removeprefix("sha256:")
    pushed = len(fleet.host.spy.completed(engine))

    # The operator restarts and a GitOps sync applies the unchanged manifest again.
    first.stop()
    operators.start("op-b")
    fleet.apply(manifest)
    fleet.kube.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=flux",
                       "-f", "-", input=json.dumps(manifest))  # fmt: skip
    time.sleep(8)  # several reconcile periods
    assert status(fleet, "halted")["phase"] == "RolledBack"
    assert set(versions(fleet, "halted").values()) == {"1.0.0"}
    assert len(fleet.host.spy.completed(engine)) == pushed
    assert fleet.get("mro", "halted")["spec"]["model"]["version"] == "2.0.0"  # spec untouched
    again = edgewave(fleet, "rollout", "abort", "halted")
    assert again.returncode == 1 and "nothing to abort" in again.stderr


def test_retry_restarts_the_failed_wave(
    *, fleet: Fleet, operators: Operators, model_files: ModelFiles, make_rollout: MakeRollout,
    until: Until, probe_fails: str,
) -> None:  # fmt: skip
    operators.start()
    uri, sha = model_files(14.0)
    fleet.apply(
        make_rollout(
            "retried", namespace=fleet.namespace, model="retried", version=probe_fails,
            uri=uri, sha256=sha, autoRollback=False,
        )
    )  # fmt: skip
    until(lambda: status(fleet, "retried").get("phase") == "Failed", what="wave eu to fail")
    assert condition(fleet, "retried", "Degraded")["reason"] == "ActivationFailed"
    assert {w["name"]: w["phase"] for w in status(fleet, "retried")["waves"]}["eu"] == "Failed"
    refused = edgewave(fleet, "rollout", "promote", "retried")
    assert refused.returncode == 1 and "no wave awaits approval" in refused.stderr

    # The person cordons the agent that cannot run this version, then retries.
    bad = fleet.manifest(fleet.host.agents["ec-1"])
    fleet.apply({**bad, "spec": {**bad["spec"], "cordoned": True}})
    retried = edgewave(fleet, "rollout", "retry", "retried")
    assert retried.returncode == 0, retried.stderr
    assert "retrying from wave eu" in retried.stdout
    wait_condition(fleet, "retried", "Ready")
    held = versions(fleet, "retried")
    assert {a for a, v in held.items() if v == probe_fails} == {"ew-0", "ew-1", "ec-0", "ue-0",
                                                               "ue-1"}  # fmt: skip
    assert wave_started(fleet, "retried") == ["canary", "eu", "eu", "us"]  # canary kept
    engine = status(fleet, "retried")["engines"][0]["digest"].removeprefix("sha256:")
    assert fleet.host.spy.count(engine, "ew-0") == 1


def _finished(rollout_status: dict[str, Any], version: str) -> bool:
    # One read: two reads could pair the old Succeeded phase with the new version.
    return (
        rollout_status.get("phase") == "Succeeded"
        and rollout_status.get("currentVersion") == version
    )


def test_undo_returns_to_the_previous_version_wave_by_wave(
    *, fleet: Fleet, operators: Operators, model_files: ModelFiles, make_rollout: MakeRollout,
    until: Until, watch: Callable[..., Any],
) -> None:  # fmt: skip
    operators.start()
    for version, scale in (("1.0.0", 15.0), ("2.0.0", 16.0)):
        uri, sha = model_files(scale)
        manifest = make_rollout(
            "undone", namespace=fleet.namespace, model="undone", version=version, uri=uri,
            sha256=sha,
        )  # fmt: skip
        fleet.apply(manifest)
        until(lambda v=version: _finished(status(fleet, "undone"), v), what=version)
    watcher = watch("mro/undone", "-n", fleet.namespace)
    # The watch lists the object first: once that is seen, no later write can be missed.
    until(lambda: bool(watcher.seen()), what="the watch to start")
    undo = edgewave(fleet, "rollout", "undo", "undone")
    assert undo.returncode == 0, undo.stderr
    assert "going back to 1.0.0, wave by wave" in undo.stdout
    until(lambda: status(fleet, "undone").get("phase") == "RolledBack", what="the undo")
    assert set(versions(fleet, "undone").values()) == {"1.0.0"}
    # Wave by wave: the canary went back before us-east did, never the other way round.
    seen = [
        {w["name"]: w["updated"] for w in (item.get("status") or {}).get("waves", [])}
        for item in watcher.seen()
    ]
    assert any(s.get("canary") == 0 and s.get("us") == 2 for s in seen), seen
    assert not any(s.get("us") == 0 and s.get("canary") for s in seen), seen
    time.sleep(5)
    assert status(fleet, "undone")["phase"] == "RolledBack"  # stays undone
    assert status(fleet, "undone")["control"]["undoToVersion"] == "1.0.0"


def test_an_activation_window_stages_engines_then_activates_when_it_opens(
    *, fleet: Fleet, operators: Operators, model_files: ModelFiles, make_rollout: MakeRollout,
    until: Until,
) -> None:  # fmt: skip
    now = datetime.datetime.now(datetime.UTC)
    opens = (now + datetime.timedelta(seconds=25)).replace(second=0, microsecond=0)
    opens += datetime.timedelta(minutes=1)  # a minute boundary 25 to 85 s away
    window = {"schedule": f"{opens.minute} {opens.hour} * * *", "durationSeconds": 300}
    operators.start()
    uri, sha = model_files(17.0)
    fleet.apply(
        make_rollout("nightly", namespace=fleet.namespace, model="nightly", version="1.0.0",
                     uri=uri, sha256=sha, activationWindow=window)
    )  # fmt: skip
    until(lambda: condition(fleet, "nightly", "Paused").get("reason") == "OutsideActivationWindow",
          what="the closed window")  # fmt: skip
    stamp = opens.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert stamp in condition(fleet, "nightly", "Paused")["message"]
    assert status(fleet, "nightly")["control"]["nextActivationAt"] == stamp
    spy = fleet.host.spy
    until(lambda: len({r.agent for r in spy.records if r.finished}) >= 6, what="staging")
    assert datetime.datetime.now(datetime.UTC) < opens  # all of it before the window
    assert set(versions(fleet, "nightly").values()) == {None}  # staged, not active

    wait_condition(fleet, "nightly", "Ready", timeout=150)
    assert set(versions(fleet, "nightly").values()) == {"1.0.0"}
    # Waves start (and stage) before the window; none passes (activates) before it opens.
    passed = min(
        datetime.datetime.fromisoformat(w["finishedAt"]) for w in status(fleet, "nightly")["waves"]
    )
    assert passed >= opens
    engine = status(fleet, "nightly")["engines"][0]["digest"].removeprefix("sha256:")
    # Staged once, then activated without a second push.
    assert {a: spy.count(engine, a) for a in fleet.host.agents} == dict.fromkeys(
        fleet.host.agents, 1
    )


def test_without_an_operator_a_request_stays_queued_and_the_command_says_so(
    *, crds: Any, namespace: str, model_files: ModelFiles, make_rollout: MakeRollout
) -> None:
    uri, sha = model_files(18.0)
    manifest = make_rollout("idle", namespace=namespace, model="idle", version="1.0.0",
                            uri=uri, sha256=sha)  # fmt: skip
    crds.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    env = {**crds.environment(), "PATH": f"{BIN}{os.pathsep}{crds.bin_dir}"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / "edgewave"), "rollout", *args, "idle", "-n", namespace]
        return subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=60, check=False
        )

    never = run("pause")
    assert never.returncode == 1 and "has not started yet" in never.stderr
    started = {"status": {"currentVersion": "1.0.0", "phase": "Progressing"}}
    crds.kubectl("patch", "mro", "idle", "-n", namespace, "--subresource=status",
                 "--type=merge", "-p", json.dumps(started))  # fmt: skip
    queued = run("pause", "--timeout", "2")
    assert queued.returncode == 1
    assert "did not answer the pause request" in queued.stderr
    assert queued.stderr.strip().count("\n") == 0
    body = json.loads(crds.kubectl("get", "mro", "idle", "-n", namespace, "-o", "json").stdout)
    request = json.loads(body["metadata"]["annotations"]["edgewave.io/request"])
    assert request["action"] == "pause" and request["generation"] == 1
    crds.kubectl("delete", "mro", "idle", "-n", namespace, "--wait=false")
