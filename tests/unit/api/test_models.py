"""The models parse live objects and write them back unchanged; defaults match the CRDs.

The operator parses with `Model.model_validate(body)` and writes status with
`model_dump(by_alias=True, exclude_none=True, mode="json")`; both directions are pinned here.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any, cast

import kopf
import pydantic
import pytest

from edgewave_api import edgeagent, modelrollout, residencypolicy

SHA = "a" * 64
T = "2026-01-02T03:04:05Z"

LIVE_ROLLOUT: dict[str, Any] = {
    "apiVersion": "edgewave.io/v1alpha1",
    "kind": "ModelRollout",
    "metadata": {
        "name": "classifier",
        "namespace": "ml",
        "uid": "0b1c",
        "resourceVersion": "812",
        "generation": 2,
        "creationTimestamp": T,
        "labels": {"app": "classifier"},
        "annotations": {"note": "x"},
        "finalizers": ["edgewave.io/cleanup"],
        "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "1"}],
    },
    "spec": {
        "model": {
            "name": "classifier",
            "version": "1.0.0",
            "uri": "file:///models/classifier.onnx",
            "sha256": SHA,
            "format": "ONNX",
        },
        "targets": {
            "regions": ["eu-west", "us-east"],
            "selector": {
                "matchLabels": {"edgewave.io/fleet": "demo"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}],
            },
        },
        "build": {
            "precision": "INT8",
            "backends": ["ONNXRuntime"],
            "profiles": [{"input": "x", "min": [1, 3], "opt": [4, 3], "max": [8, 3]}],
            "maxWorkspaceMiB": 1024,
        },
        "strategy": {
            "waves": [
                {"name": "eu", "regions": ["eu-west"], "maxUnavailable": 1, "maxFailed": "10%"},
                {"name": "rest", "maxUnavailable": "50%", "maxFailed": 0},
            ],
            "pauseBetweenWavesSeconds": 5,
            "healthGate": {
                "maxP95LatencyMs": 25.5,
                "maxErrorRate": 0.05,
                "minSamples": 10,
                "windowSeconds": 30,
            },
            "autoRollback": False,
            "paused": True,
            "progressDeadlineSeconds": 120,
            "unreachableTimeoutSeconds": 900,
        },
        "residency": {
            "allowedRegions": ["eu-west", "us-east"],
            "allowedJurisdictions": ["EU", "US"],
            "policyRef": {"name": "eu-only"},
        },
    },
    "status": {
        "observedGeneration": 2,
        "phase": "RolledBack",
        "message": "wave rest failed its gate; rolled back",
        "ready": "2/4",
        "currentVersion": "1.0.0",
        "previousVersion": "0.9.0",
        "currentWave": "rest",
        "conditions": [
            {
                "type": "Degraded",
                "status": "True",
                "observedGeneration": 2,
                "lastTransitionTime": T,
                "reason": "WaveHealthGateFailed",
                "message": "error rate 0.2 > 0.05",
            }
        ],
        "engines": [
            {
                "key": "ort-cpu-int8",
                "backend": "ONNXRuntime",
                "digest": "sha256:" + SHA,
                "sizeBytes": 1000,
                "buildSeconds": 0.5,
                "builtOn": "Central",
            },
            {
                "key": "trt-sm87-int8",
                "backend": "TensorRT",
                "computeCapability": "8.7",
                "digest": "sha256:" + SHA,
                "sizeBytes": 2000,
                "builtOn": "Agent",
                "agent": "jetson-1",
            },
        ],
        "waves": [
            {
                "targets": 2,
                "updated": 2,
                "healthy": 2,
                "failed": 0,
                "offline": 0,
                "name": "eu",
                "phase": "Succeeded",
                "startedAt": T,
                "finishedAt": T,
                "gate": {"p95LatencyMs": 10.0, "errorRate": 0.0, "samples": 30, "passed": True},
            },
            {
                "targets": 2,
                "updated": 1,
                "healthy": 0,
                "failed": 1,
                "offline": 1,
                "name": "rest",
                "phase": "RolledBack",
                "gate": {"errorRate": 0.2, "samples": 12, "passed": False},
            },
        ],
        "regions": [
            {
                "targets": 2,
                "updated": 2,
                "healthy": 2,
                "failed": 0,
                "offline": 0,
                "region": "eu-west",
                "excluded": 1,
            }
        ],
        "totals": {
            "targets": 4,
            "updated": 3,
            "healthy": 2,
            "failed": 1,
            "offline": 1,
            "excluded": 1,
            "converging": 0,
        },
        "exclusions": [{"reason": "Cordoned", "count": 1, "examples": ["edge-3"]}],
        "startedAt": T,
        "finishedAt": T,
    },
}

LIVE_AGENT: dict[str, Any] = {
    "apiVersion": "edgewave.io/v1alpha1",
    "kind": "EdgeAgent",
    "metadata": {"name": "edge-1", "generation": 1, "labels": {"gpu": "ada"}},
    "spec": {
        "endpoint": "[::1]:50051",
        "region": "eu-west",
        "zone": "a",
        "jurisdiction": "EU",
        "tlsSecretRef": {"name": "edge-1-tls", "namespace": "edgewave-system"},
        "cordoned": False,
    },
    "status": {
        "observedGeneration": 1,
        "gpu": {
            "name": "RTX",
            "computeCapability": "8.9",
            "memoryMiB": 20475,
            "driverVersion": "580",
        },
        "runtimes": [{"name": "ONNXRuntime", "version": "1.32.0"}],
        "models": [
            {
                "name": "classifier",
                "version": "1.0.0",
                "digest": "sha256:" + SHA,
                "backend": "ONNXRuntime",
                "state": "Active",
                "rollout": "ml/classifier",
                "p95LatencyMs": 3.5,
                "errorRate": 0.0,
                "activatedAt": T,
            }
        ],
        "freeDiskBytes": 123,
        "lastSeen": T,
        "reportedRegion": "eu-west",
        "reportedJurisdiction": "EU",
        "agentVersion": "0.1.0",
        "platform": "linux/x86_64",
        "conditions": [
            {
                "type": "Reachable",
                "status": "True",
                "lastTransitionTime": T,
                "reason": "DescribeAnswered",
                "message": "",
            }
        ],
    },
}

LIVE_POLICY: dict[str, Any] = {
    "apiVersion": "edgewave.io/v1alpha1",
    "kind": "ResidencyPolicy",
    "metadata": {"name": "eu-only"},
    "spec": {
        "selector": {"matchLabels": {"edgewave.io/residency": "eu"}},
        "namespaces": ["ml"],
        "allowedRegions": ["eu-west"],
        "allowedJurisdictions": ["EU"],
        "deniedRegions": ["us-east"],
    },
    "status": {
        "observedGeneration": 1,
        "matchedRollouts": 2,
        "violations": 0,
        "excludedAgents": 3,
        "evictions": 1,
        "conditions": [],
    },
}

RESOURCES: list[tuple[type[pydantic.BaseModel], dict[str, Any]]] = [
    (modelrollout.ModelRollout, LIVE_ROLLOUT),
    (edgeagent.EdgeAgent, LIVE_AGENT),
    (residencypolicy.ResidencyPolicy, LIVE_POLICY),
]


def _dump(model: pydantic.BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


@pytest.mark.parametrize(("model", "body"), RESOURCES, ids=lambda v: getattr(v, "__name__", ""))
def test_live_objects_round_trip_unchanged(
    model: type[pydantic.BaseModel], body: dict[str, Any]
) -> None:
    assert _dump(model.model_validate(body)) == body
    # kopf hands handlers a Body mapping, not a dict; it parses the same.
    raw = cast("kopf.RawBody", copy.deepcopy(body))
    assert _dump(model.model_validate(kopf.Body(raw))) == body


def test_status_alone_round_trips_for_a_status_patch() -> None:
    status = modelrollout.ModelRolloutStatus.model_validate(LIVE_ROLLOUT["status"])
    assert _dump(status) == LIVE_ROLLOUT["status"]
    assert status.phase is modelrollout.RolloutPhase.ROLLED_BACK
    assert status.waves[1].gate is not None and status.waves[1].gate.passed is False
    assert status.started_at == datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def test_minimal_rollout_gets_the_documented_defaults() -> None:
    rollout = modelrollout.ModelRollout.model_validate(
        {
            "metadata": {"name": "m"},
            "spec": {
                "model": {"name": "m", "version": "1", "uri": "https://x/m.onnx", "sha256": SHA},
                "targets": {"regions": ["eu-west"]},
                "strategy": {"waves": [{"name": "all"}]},
            },
        }
    )
    spec = rollout.spec
    assert rollout.api_version == "edgewave.io/v1alpha1"
    assert rollout.kind == "ModelRollout"
    assert spec.model.format is modelrollout.ModelFormat.ONNX
    assert spec.build.precision is modelrollout.Precision.FP16
    assert spec.build.backends == [
        modelrollout.Backend.TENSORRT,
        modelrollout.Backend.TENSORRT_RTX,
        modelrollout.Backend.ONNX_RUNTIME,
    ]
    assert (spec.strategy.waves[0].max_unavailable, spec.strategy.waves[0].max_failed) == ("25%", 0)
    gate = spec.strategy.health_gate
    assert (
        gate.max_p95_latency_ms,
        gate.max_error_rate,
        gate.min_samples,
        gate.window_seconds,
    ) == (
        None,
        0.01,
        20,
        60,
    )
    assert spec.strategy.auto_rollback is True
    assert spec.strategy.paused is False
    assert spec.strategy.progress_deadline_seconds == 600
    assert spec.strategy.unreachable_timeout_seconds == 600
    assert rollout.status is None


def test_python_names_and_wire_names_both_parse() -> None:
    by_name = modelrollout.HealthGate(max_error_rate=0.2, window_seconds=5)
    by_alias = modelrollout.HealthGate.model_validate({"maxErrorRate": 0.2, "windowSeconds": 5})
    assert by_name == by_alias
    assert _dump(by_name) == {
        "maxErrorRate": 0.2,
        "minSamples": 20,
        "windowSeconds": 5,
    }


def test_wrong_kind_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="kind"):
        edgeagent.EdgeAgent.model_validate({**LIVE_AGENT, "kind": "ModelRollout"})


def test_duplicate_list_map_keys_are_refused_in_python_too() -> None:
    status = copy.deepcopy(LIVE_AGENT["status"])
    status["models"].append(dict(status["models"][0]))
    with pytest.raises(pydantic.ValidationError, match="name and version values must be unique"):
        edgeagent.EdgeAgentStatus.model_validate(status)


@pytest.mark.parametrize(
    ("region", "jurisdiction", "allowed"),
    [
        ("eu-west", "EU", (True, True)),
        ("us-east", "US", (False, False)),
        ("eu-central", None, (False, False)),
    ],
)
def test_policy_allows(region: str, jurisdiction: str | None, allowed: tuple[bool, bool]) -> None:
    spec = residencypolicy.ResidencyPolicySpec.model_validate(LIVE_POLICY["spec"])
    assert (spec.allows_region(region), spec.allows_jurisdiction(jurisdiction)) == allowed


def test_policy_with_only_denied_regions_allows_everything_else() -> None:
    spec = residencypolicy.ResidencyPolicySpec(denied_regions=["us-east"])
    assert spec.allows_region("ap-south")
    assert not spec.allows_region("us-east")
    assert spec.allows_jurisdiction(None)
    assert spec.selector.matches({"anything": "at-all"})


def test_catch_all_wave_may_be_last() -> None:
    strategy = modelrollout.Strategy.model_validate(
        {"waves": [{"name": "canary", "regions": ["eu-west"]}, {"name": "rest"}]}
    )
    assert strategy.waves[-1].regions is None


@pytest.mark.parametrize("seconds", [0, -1, 604801])
def test_unreachable_timeout_out_of_bounds_is_refused(seconds: int) -> None:
    with pytest.raises(pydantic.ValidationError, match="unreachableTimeoutSeconds"):
        modelrollout.Strategy.model_validate(
            {"waves": [{"name": "all"}], "unreachableTimeoutSeconds": seconds}
        )
