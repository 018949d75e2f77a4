"""Rollouts and agents for the dashboard's unit tests (plain API models, no cluster)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import yaml

from edgewave_api import conditions, edgeagent, meta, modelrollout

ROOT = Path(__file__).resolve().parents[3]
T0 = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
ONNX = [edgeagent.RuntimeInfo(name="ONNXRuntime", version="1.20.1")]
DIGEST = "sha256:" + "a" * 64


def rollout(
    *, paused: bool = False, status: dict[str, Any] | None = None
) -> modelrollout.ModelRollout:
    body = yaml.safe_load((ROOT / "docs/examples/modelrollout-multiregion.yaml").read_text())
    body["metadata"]["namespace"] = "shop"
    body["spec"]["strategy"]["paused"] = paused
    if status is not None:
        body["status"] = status
    return modelrollout.ModelRollout.model_validate(body)


STATUS: dict[str, Any] = {
    "observedGeneration": 1,
    "phase": "Progressing",
    "message": "wave eu-central progressing",
    "ready": "2/3",
    "currentWave": "eu-central",
    "conditions": [
        {
            "type": "Ready",
            "status": "False",
            "reason": "WaveInProgress",
            "message": "wave eu-central",
            "observedGeneration": 1,
            "lastTransitionTime": "2026-01-02T03:02:05Z",
        }
    ],
    "waves": [
        {
            "name": "eu-west",
            "phase": "Succeeded",
            "targets": 2,
            "updated": 2,
            "healthy": 2,
            "gate": {"samples": 31, "p95LatencyMs": 2.5, "errorRate": 0.0, "passed": True},
        },
        {"name": "eu-central", "phase": "Progressing", "targets": 1},
    ],
    "regions": [{"region": "eu-west", "targets": 2, "updated": 2, "healthy": 2}],
}


def held(version: str, state: str, *, p95: float | None = None) -> edgeagent.HeldModel:
    return edgeagent.HeldModel(
        name="classifier",
        version=version,
        digest=DIGEST,
        backend=modelrollout.Backend("ONNXRuntime"),
        state=edgeagent.HeldModelState(state),
        p95_latency_ms=p95,
        error_rate=0.0 if p95 is not None else None,
    )


def agent(
    name: str, region: str, *models: edgeagent.HeldModel, ready: bool = True
) -> edgeagent.EdgeAgent:
    found = conditions.set_condition(
        [], type="Ready", status=ready, reason="Test", message="", observed_generation=1, now=T0
    )
    return edgeagent.EdgeAgent(
        metadata=meta.ObjectMeta(name=name),
        spec=edgeagent.EdgeAgentSpec(endpoint=f"{name}:7443", region=region),
        status=edgeagent.EdgeAgentStatus(runtimes=ONNX, models=list(models), conditions=found),
    )


def fleet() -> list[edgeagent.EdgeAgent]:
    return [
        agent("west-1", "eu-west", held("1.0.0", "Active", p95=2.5), held("0.9.0", "Standby")),
        agent("west-2", "eu-west", held("1.0.0", "Active", p95=3.0)),
        agent("central-1", "eu-central", held("0.9.0", "Active"), ready=False),
        # Holds nothing and reports no runtime: excluded, not on the board.
        edgeagent.EdgeAgent(
            metadata=meta.ObjectMeta(name="bare-1"),
            spec=edgeagent.EdgeAgentSpec(endpoint="bare-1:7443", region="us-east"),
        ),
    ]
