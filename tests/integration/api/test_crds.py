"""The generated CRDs on a real kube-apiserver: samples apply, bad input is refused by field,
defaults and status writes agree with the pydantic models, kubectl shows columns and docs."""

from __future__ import annotations

import copy
import datetime
import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgewave_api import conditions, crdgen, edgeagent, kubeyaml, modelrollout
from edgewave_operator.devcluster import clusters

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "docs" / "examples"
CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "invalid_manifests.yaml").read_text()
)
T0 = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


KINDS = {resource.crd.kind for resource in crdgen.RESOURCES}


def _documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]


# The Edgewave samples: files holding only our kinds (docs/examples has fleets, GitOps too).
SAMPLES = [
    path.name
    for path in sorted(EXAMPLES.glob("*.yaml"))
    if all(document.get("kind") in KINDS for document in _documents(path.name))
]


def _mutated(case: dict[str, Any]) -> dict[str, Any]:
    """The case's base sample with its `set` changes applied, named after the case."""
    document = copy.deepcopy(_documents(case["base"])[0])
    for path, value in case["set"].items():
        *parents, leaf = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(leaf) if isinstance(node, list) else leaf
        if value is None:
            del node[key]
        else:
            node[key] = value
    document["metadata"] = {"name": case["name"]}
    return document


@pytest.fixture(scope="module")
def api(kube: clusters.DevCluster) -> Iterator[tuple[clusters.DevCluster, str]]:
    """The CRDs applied and Established once, and a namespace for this module's objects."""
    kube.kubectl("apply", "-f", str(ROOT / "crds"))
    names = [f"crd/{resource.crd.name}" for resource in crdgen.RESOURCES]
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    namespace = f"api-{secrets.token_hex(3)}"
    kube.kubectl("create", "namespace", namespace)
    yield kube, namespace
    # Cluster-scoped samples would otherwise join other tests' fleets and policies.
    for sample in ("edgeagents.yaml", "residencypolicy-eu-only.yaml"):
        kube.kubectl("delete", "-f", str(EXAMPLES / sample), "--ignore-not-found", "--wait=false")
    kube.kubectl("delete", "modelrollouts", "--all", "-n", namespace, "--wait=false")
    kube.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.fixture(scope="module")
def samples(api: tuple[clusters.DevCluster, str]) -> tuple[clusters.DevCluster, str]:
    """Every sample in docs/examples applied (really created) with `kubectl apply -f`."""
    kube, namespace = api
    assert {"modelrollout-multiregion.yaml", "edgeagents.yaml"} <= set(SAMPLES)
    for sample in SAMPLES:
        kube.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / sample))
    return api


def test_crds_are_structural_and_established(api: tuple[clusters.DevCluster, str]) -> None:
    kube, _ = api
    for resource in crdgen.RESOURCES:
        crd = json.loads(kube.kubectl("get", "crd", resource.crd.name, "-o", "json").stdout)
        marks = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert marks["Established"] == "True"
        assert marks["NamesAccepted"] == "True"
        assert "NonStructuralSchema" not in marks


def test_every_sample_applies_and_reads_back_as_the_models(
    samples: tuple[clusters.DevCluster, str],
) -> None:
    kube, namespace = samples
    listed = json.loads(kube.kubectl("get", "edgewave", "-n", namespace, "-o", "json").stdout)
    names = {(item["kind"], item["metadata"]["name"]) for item in listed["items"]}
    assert {("ModelRollout", "classifier-global"), ("ModelRollout", "classifier-eu")} <= names
    agents = json.loads(kube.kubectl("get", "eag", "-o", "json").stdout)["items"]
    parsed = [edgeagent.EdgeAgent.model_validate(item) for item in agents]
    assert {"edge-eu-west-1", "edge-us-east-1"} <= {a.metadata.name for a in parsed}


@pytest.mark.parametrize("sample", ["modelrollout-multiregion.yaml", "modelrollout-eu-only.yaml"])
def test_server_defaults_equal_the_model_defaults(
    samples: tuple[clusters.DevCluster, str], sample: str
) -> None:
    kube, namespace = samples
    written = _documents(sample)[0]
    live = json.loads(
        kube.kubectl(
            "get", "mro", written["metadata"]["name"], "-n", namespace, "-o", "json"
        ).stdout
    )
    from_model = modelrollout.ModelRollout.model_validate(written).model_dump(
        by_alias=True, exclude_none=True, mode="json"
    )
    assert live["spec"] == from_model["spec"]


def _rollout_status(generation: int) -> modelrollout.ModelRolloutStatus:
    now = T0
    marks = conditions.set_condition(
        [],
        type=modelrollout.RolloutConditionType.PROGRESSING,
        status=True,
        reason="WaveProgressing",
        message="wave eu-central: 1 of 2 agents updated",
        observed_generation=generation,
        now=now,
    )
    return modelrollout.ModelRolloutStatus(
        observed_generation=generation,
        phase=modelrollout.RolloutPhase.PROGRESSING,
        message="wave eu-central in progress",
        ready="4/6",
        current_version="1.0.0",
        previous_version="0.9.0",
        current_wave="eu-central",
        conditions=marks,
        engines=[
            modelrollout.EngineStatus(
                key="trtrtx-sm89-fp16",
                backend=modelrollout.Backend.TENSORRT_RTX,
                compute_capability="8.9",
                digest="sha256:" + "ab" * 32,
                size_bytes=12_345_678,
                build_seconds=41.5,
            ),
            modelrollout.EngineStatus(
                key="trt-sm87-fp16",
                backend=modelrollout.Backend.TENSORRT,
                compute_capability="8.7",
                digest="sha256:" + "cd" * 32,
                size_bytes=9_000_000,
                built_on=modelrollout.BuildLocation.AGENT,
                agent="edge-eu-central-1",
            ),
        ],
        waves=[
            modelrollout.WaveStatus(
                name="eu-west",
                phase=modelrollout.WavePhase.SUCCEEDED,
                targets=2,
                updated=2,
                healthy=2,
                started_at=now,
                finished_at=now,
                gate=modelrollout.GateMeasurement(
                    p95_latency_ms=12.5, error_rate=0.0, samples=40, passed=True
                ),
            ),
            modelrollout.WaveStatus(name="eu-central", phase=modelrollout.WavePhase.PROGRESSING),
        ],
        regions=[modelrollout.RegionStatus(region="eu-west", targets=2, updated=2, healthy=2)],
        totals=modelrollout.RolloutTotals(targets=6, updated=4, healthy=4, excluded=1),
        exclusions=[
            modelrollout.ExclusionSummary(
                reason=modelrollout.ExclusionReason.CORDONED, count=1, examples=["edge-us-east-1"]
            )
        ],
        started_at=now,
    )


def _agent_status() -> edgeagent.EdgeAgentStatus:
    return edgeagent.EdgeAgentStatus(
        gpu=edgeagent.GpuInfo(
            name="NVIDIA RTX 4000 Ada Generation", compute_capability="8.9", memory_mib=20475
        ),
        runtimes=[edgeagent.RuntimeInfo(name="TensorRTRTX", version="1.7.0")],
        models=[
            edgeagent.HeldModel(
                name="classifier",
                version="1.0.0",
                digest="sha256:" + "ab" * 32,
                backend=modelrollout.Backend.TENSORRT_RTX,
                state=edgeagent.HeldModelState.ACTIVE,
                p95_latency_ms=11.0,
                error_rate=0.001,
            )
        ],
        free_disk_bytes=10**11,
        last_seen=T0,
        connection=edgeagent.AgentConnection(connected=True, gateway="gw-eu-west", since=T0),
        reported_region="eu-west",
        reported_jurisdiction="EU",
        conditions=conditions.set_condition(
            [],
            type=edgeagent.AgentConditionType.READY,
            status=True,
            reason="Serving",
            message="1 model active",
            observed_generation=1,
            now=T0,
        ),
    )


def _write_status(kube: clusters.DevCluster, *target: str, status: Any) -> dict[str, Any]:
    """Writes `status` through the status subresource as the operator will; returns the object."""
    body = {"status": status.model_dump(by_alias=True, exclude_none=True, mode="json")}
    kube.kubectl("patch", *target, "--subresource=status", "--type=merge", "-p", json.dumps(body))
    return dict(json.loads(kube.kubectl("get", *target, "-o", "json").stdout))


@pytest.fixture(scope="module")
def statuses(
    samples: tuple[clusters.DevCluster, str],
) -> tuple[modelrollout.ModelRollout, edgeagent.EdgeAgent]:
    """A rollout and an agent with status written from the models, as read back."""
    kube, namespace = samples
    target = ("mro", "classifier-global", "-n", namespace)
    live = json.loads(kube.kubectl("get", *target, "-o", "json").stdout)
    rollout = _write_status(kube, *target, status=_rollout_status(live["metadata"]["generation"]))
    agent = _write_status(kube, "eag", "edge-eu-west-1", status=_agent_status())
    return (
        modelrollout.ModelRollout.model_validate(rollout),
        edgeagent.EdgeAgent.model_validate(agent),
    )


def test_status_written_from_the_models_is_accepted_and_reads_back(
    statuses: tuple[modelrollout.ModelRollout, edgeagent.EdgeAgent],
) -> None:
    rollout, agent = statuses
    assert rollout.status == _rollout_status(rollout.metadata.generation or 0)
    assert agent.status == _agent_status()


def test_kubectl_get_shows_the_printer_columns(
    samples: tuple[clusters.DevCluster, str],
    statuses: tuple[modelrollout.ModelRollout, edgeagent.EdgeAgent],
) -> None:
    kube, namespace = samples
    table = kube.kubectl("get", "mro,eag", "-n", namespace).stdout
    headers = [line.split() for line in table.splitlines() if line.startswith("NAME")]
    assert ["NAME", "MODEL", "VERSION", "PHASE", "READY", "AGE"] in headers
    agent_columns = ["NAME", "REGION", "GPU", "CC", "READY", "CONNECTED", "GATEWAY"]
    assert [*agent_columns, "LAST", "SEEN"] in headers
    rollout = next(line for line in table.splitlines() if "classifier-global" in line).split()
    assert rollout[1:5] == ["classifier", "1.0.0", "Progressing", "4/6"]
    agent = next(line for line in table.splitlines() if "edge-eu-west-1" in line)
    assert re.search(
        r"eu-west\s+NVIDIA RTX 4000 Ada Generation\s+8\.9\s+True\s+true\s+gw-eu-west\s+\d", agent
    )


def test_field_selector_on_region(samples: tuple[clusters.DevCluster, str]) -> None:
    kube, _ = samples
    names = kube.kubectl(
        "get", "eag", "--field-selector", "spec.region=us-east", "-o", "name"
    ).stdout.split()
    assert "edgeagent.edgewave.io/edge-us-east-1" in names
    assert "edgeagent.edgewave.io/edge-eu-west-1" not in names


def test_kubectl_explain_shows_the_model_descriptions(
    api: tuple[clusters.DevCluster, str],
) -> None:
    kube, _ = api
    # The API server publishes the CRD's OpenAPI a moment after it is Established.
    deadline = time.monotonic() + 30
    while True:
        result = kube.kubectl("explain", "modelrollout.spec.strategy", check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    text = result.stdout
    assert "Waves, health gates and rollback." in text
    assert "Waves in rollout order; at least one." in text
    assert "Re-activate the previous version on every updated agent when a wave fails." in text
    unavailable = kube.kubectl("explain", "modelrollout.spec.strategy.waves.maxUnavailable").stdout
    assert "Most agents of the wave updating at once" in unavailable


@pytest.fixture(scope="module")
def refusals(api: tuple[clusters.DevCluster, str]) -> dict[str, str]:
    """Every bad manifest sent in one `kubectl apply --dry-run=server`: {case name: error}."""
    kube, namespace = api
    stream = kubeyaml.dump_all([_mutated(case) for case in CASES])
    result = kube.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=stream, check=False
    )
    assert result.returncode != 0
    assert "created" not in result.stdout, f"accepted: {result.stdout}"
    errors: dict[str, str] = {}
    for chunk in re.split(r"(?m)^Error from server", result.stderr):
        match = re.search(r'"([a-z0-9-]+)" is invalid', chunk)
        if match:
            errors[match.group(1)] = chunk
    return errors


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_bad_manifest_is_refused_naming_the_field(
    refusals: dict[str, str], case: dict[str, Any]
) -> None:
    error = refusals.get(case["name"])
    assert error is not None, f"{case['name']} was not refused"
    assert f"{case['field']}:" in error, error
    if "says" in case:
        assert case["says"] in error, error
