"""An agent offline during its wave, end to end: real API server, operator and agents.

The agent `ue-1` is stopped (its server gone, its port closed) before the rollout reaches
its wave. The wave waits for it, counts it against `maxFailed` after a short
`unreachableTimeoutSeconds`, and the rollout succeeds without it. The agent then starts
again on the same port with the same store, and the operator brings it to the version
by itself: no wave runs again, the phase stays Succeeded, the engine reaches it once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Fleet = Any
Operators = Any
ModelFiles = Callable[[float], tuple[str, str]]
MakeRollout = Callable[..., dict[str, Any]]
Until = Callable[..., None]

TIMEOUT_SECONDS = 3


def _status(fleet: Fleet, name: str) -> dict[str, Any]:
    return dict(fleet.get("mro", name).get("status") or {})


def _reachable(fleet: Fleet, agent_id: str) -> bool | None:
    status = fleet.get("edgeagent", fleet.name(agent_id), namespaced=False).get("status") or {}
    found = next((c for c in status.get("conditions", []) if c["type"] == "Reachable"), None)
    return None if found is None else found["status"] == "True"


def _reasons(fleet: Fleet) -> list[str]:
    return [e["reason"] for e in fleet.events() if e["involvedObject"]["kind"] == "ModelRollout"]


def test_an_agent_offline_in_its_wave_counts_failed_then_converges_when_back(
    *,
    fleet: Fleet,
    operators: Operators,
    model_files: ModelFiles,
    make_rollout: MakeRollout,
    until: Until,
) -> None:
    operators.start()
    host = fleet.host
    until(lambda: _reachable(fleet, "ue-1") is True, what="the operator to reach ue-1")
    offline = host.agents["ue-1"]
    port = offline.server.control_port
    host.call(offline.server.stop(grace=0))
    until(lambda: _reachable(fleet, "ue-1") is False, what="ue-1 to show as unreachable")

    uri, sha = model_files(5.0)
    manifest = make_rollout(
        "lidar", namespace=fleet.namespace, model="lidar", version="1.0.0", uri=uri, sha256=sha,
        waves=[
            {"name": "canary", "regions": ["eu-west"], "maxUnavailable": 1},
            {"name": "eu", "regions": ["eu-central"], "maxUnavailable": 2},
            {"name": "us", "regions": ["us-east"], "maxUnavailable": 2, "maxFailed": 1},
        ],
        unreachableTimeoutSeconds=TIMEOUT_SECONDS,
    )  # fmt: skip
    fleet.apply(manifest)
    until(lambda: _status(fleet, "lidar").get("phase") == "Succeeded", what="the rollout")
    status = _status(fleet, "lidar")
    us = next(w for w in status["waves"] if w["name"] == "us")
    assert (us["phase"], us["updated"], us["failed"], us["offline"]) == ("Succeeded", 1, 1, 1)
    assert status["totals"]["offline"] == 1
    reasons = _reasons(fleet)
    assert "AgentsOffline" in reasons and reasons.count("WaveStarted") == 3
    started = {w["name"]: w["startedAt"] for w in status["waves"]}
    engine = status["engines"][0]["digest"].removeprefix("sha256:")
    assert host.spy.count(engine, "ue-1") == 0

    # The agent comes back on the same port, with the same store.
    back = host.start(
        "ue-1",
        region=offline.region,
        jurisdiction=offline.jurisdiction,
        listen={"control": f"127.0.0.1:{port}"},
    )
    until(lambda: back.active("lidar") == "1.0.0", what="ue-1 to converge to 1.0.0")
    until(
        lambda: _status(fleet, "lidar").get("totals", {}).get("updated") == 6,
        what="the status to count ue-1 updated",
    )
    after = _status(fleet, "lidar")
    assert after["phase"] == "Succeeded"
    assert {w["name"]: w["startedAt"] for w in after["waves"]} == started  # no wave replayed
    us = next(w for w in after["waves"] if w["name"] == "us")
    assert (us["updated"], us["failed"], us["offline"]) == (2, 0, 0)
    reasons = _reasons(fleet)
    assert "ConvergingLateAgents" in reasons
    assert reasons.count("WaveStarted") == 3
    assert host.spy.count(engine, "ue-1") == 1  # pushed once, when it came back
