"""A TensorRT-RTX engine from the operator to an agent, on this CPU-only machine.

The operator builds a real TensorRT-RTX engine (ahead of time: the builder needs no GPU)
for the compute capability an agent reports and pushes it; the agent checks that the
engine fits before it loads anything. Here the agent reports an RTX A6000 (SM 8.6) that
this machine does not have, as an agent would whose GPU vanished or whose driver cannot
run the engine: the agent's fit check (TensorRT-RTX's `getEngineValidity`) must refuse the
engine with its reason, and the rollout must report that reason and roll back, never
serve. An agent without a GPU is not sent the engine at all (NoCompatibleBackend).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from edgewave_agent.backends import GpuInfo

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Fleet = Any
Operators = Any
ModelFiles = Callable[[float], tuple[str, str]]
MakeRollout = Callable[..., dict[str, Any]]
Until = Callable[..., None]

SM86 = GpuInfo(index=0, name="lab RTX A6000", compute_capability=(8, 6), memory_bytes=48 << 30)


def _status(fleet: Fleet, name: str) -> dict[str, Any]:
    status: dict[str, Any] = fleet.get("mro", name).get("status") or {}
    return status


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


def test_an_agent_refuses_a_tensorrt_rtx_engine_at_its_fit_check_and_the_rollout_says_why(
    *,
    fleet: Fleet,
    operators: Operators,
    model_files: ModelFiles,
    make_rollout: MakeRollout,
    until: Until,
) -> None:
    host = fleet.host
    rtx = host.start("rtx-0", region="eu-west", jurisdiction="EU", gpus=[SM86])
    try:
        manifest = fleet.manifest(rtx)
        manifest["metadata"]["labels"]["only"] = "rtx"
        fleet.apply(manifest)
        cpu = fleet.manifest(host.agents["ew-0"])
        cpu["metadata"]["labels"]["only"] = "rtx"  # a CPU-only agent among the targets
        fleet.apply(cpu)
        operators.start()
        uri, sha = model_files(31.0)
        rollout = make_rollout(
            "rtx", namespace=fleet.namespace, model="rtx", version="1.0.0", uri=uri, sha256=sha,
            waves=[{"name": "all", "maxUnavailable": "100%"}],
        )  # fmt: skip
        rollout["spec"]["targets"]["selector"]["matchLabels"]["only"] = "rtx"
        rollout["spec"]["build"] = {
            "precision": "FP16",
            "backends": ["TensorRTRTX"],
            "profiles": [{"input": "x", "min": [1, 4], "opt": [2, 4], "max": [8, 4]}],
        }
        fleet.apply(rollout)
        until(
            lambda: _status(fleet, "rtx").get("phase") in ("RolledBack", "Failed"),
            what="the rollout to give up on the engine",
            timeout=180,
        )
        status = _status(fleet, "rtx")
        # The operator built one real TensorRT-RTX engine, for the agent's SM 8.6.
        [engine] = status["engines"]
        assert engine["backend"] == "TensorRTRTX", engine
        assert engine["computeCapability"] == "8.6", engine
        digest = engine["digest"].removeprefix("sha256:")
        assert host.spy.count(digest, "rtx-0") == 1  # pushed to the agent, once
        # ... which refused it before loading: nothing serves, nothing is left active.
        assert rtx.active("rtx") is None
        # The CPU-only target was never sent it: no backend it has can serve the rollout.
        assert host.spy.count(digest, "ew-0") == 0
        assert host.agents["ew-0"].versions("rtx") == []
        [exclusion] = status["exclusions"]
        assert exclusion["reason"] == "NoCompatibleBackend" and exclusion["count"] == 1
        # The rollout says which agent refused and why, in its condition and in an event.
        degraded = _condition(status, "Degraded")
        assert degraded["status"] == "True" and degraded["reason"] == "ActivationFailed"
        message = str(degraded["message"])
        assert fleet.name("rtx-0") in message
        assert "cannot run on this agent" in message and "tensorrt-rtx" in message, message
        warnings = [
            e["message"]
            for e in fleet.events()
            if e["type"] == "Warning" and fleet.name("rtx-0") in e["message"]
        ]
        assert any("cannot run on this agent" in w for w in warnings), warnings
    finally:
        fleet.kube.kubectl("delete", "edgeagent", fleet.name("rtx-0"), "--wait=false")
        host.call(rtx.server.stop(grace=0))
        del host.agents["rtx-0"]
