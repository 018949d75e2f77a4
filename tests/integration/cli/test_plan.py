"""`edgewave plan`: dry runs on the declared GPU fleet (real TensorRT-RTX builds) and live."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgewave_api import kubeyaml
from edgewave_operator.demo import manifests, models
from edgewave_operator.devcluster import clusters

pytestmark = pytest.mark.integration
Edgewave = Callable[..., subprocess.CompletedProcess[str]]
ROOT = Path(__file__).resolve().parents[3]
FLEET = ROOT / "docs" / "cli" / "fleet.yaml"
POLICY = ROOT / "docs" / "examples" / "residencypolicy-eu-only.yaml"


def _rendered(sample: str, *, directory: Path, shape: tuple[int | str, ...]) -> Path:
    model = models.write(
        models.classifier(seed=11, shape=shape),
        directory=directory,
        name="classifier",
        version="1.0.0",
        request_shape=(1,),
    )
    path = directory / sample
    path.write_text(
        manifests.dump(manifests.rollout(manifests.example(sample), model=model, short=None))
    )
    return path


def _builds(document: dict[str, Any]) -> dict[tuple[str, str | None, str], dict[str, Any]]:
    return {(b["backend"], b["computeCapability"], b["location"]): b for b in document["builds"]}


@pytest.mark.slow
def test_the_gpu_fleet_gets_one_real_build_per_rtx_class_and_jetsons_build_their_own(
    edgewave: Edgewave, tmp_path: Path
) -> None:
    rollout = _rendered(manifests.GLOBAL_ROLLOUT, directory=tmp_path, shape=models.DYNAMIC_SHAPE)
    cache = tmp_path / "cache"
    args = ("plan", str(rollout), "--fleet", str(FLEET), "--cache", str(cache), "-o", "json")
    first = edgewave(*args, timeout=300)
    assert first.returncode == 0, first.stderr
    document = json.loads(first.stdout)
    builds = _builds(document)
    assert sorted(builds) == [
        ("TensorRT", "8.7", "agent"),
        ("TensorRTRTX", "8.6", "central"),
        ("TensorRTRTX", "8.9", "central"),
    ]
    for cc in ("8.6", "8.9"):
        result = builds[("TensorRTRTX", cc, "central")]["result"]
        assert result["engineDigest"].startswith("sha256:")
        assert result["sizeBytes"] > 0
        assert result["cached"] is False
    assert builds[("TensorRTRTX", "8.6", "central")]["agents"] == [
        "gpu-eu-central-1",
        "gpu-us-east-1",
        "gpu-us-east-2",
    ]
    jetson = builds[("TensorRT", "8.7", "agent")]
    assert (jetson["builds"], jetson["result"]) == (3, None)
    assert [(e["agent"], e["reason"]) for e in document["exclusions"]] == [
        ("gpu-us-east-3", "Cordoned")
    ]
    assert [w["name"] for w in document["waves"]] == ["eu-west", "eu-central", "us-east"]
    assert len(document["targets"]) == 9
    # The engine cache makes the second plan reuse both builds: same engines, no build.
    second = json.loads(edgewave(*args, timeout=300).stdout)
    for key, build in _builds(second).items():
        if key[2] == "central":
            assert build["result"]["cached"] is True
            assert build["result"]["engineDigest"] == builds[key]["result"]["engineDigest"]


@pytest.mark.slow
def test_the_eu_only_rollout_excludes_us_agents_with_the_reason_in_the_table(
    edgewave: Edgewave, tmp_path: Path
) -> None:
    rollout = _rendered(manifests.EU_ROLLOUT, directory=tmp_path, shape=models.FIXED_SHAPE)
    result = edgewave(
        "plan",
        str(rollout),
        "--fleet",
        str(FLEET),
        "--policy",
        str(POLICY),
        "--cache",
        str(tmp_path / "cache"),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "6 targets in 2 waves, 4 excluded, 2 central builds + 2 on agents" in text
    assert "residency: spec.residency, ResidencyPolicy/eu-only" in text
    excluded = [line for line in text.splitlines() if "RegionNotAllowed" in line]
    assert len(excluded) == 4
    assert all("us-east" in line for line in excluded)
    assert "built on each agent (2 builds)" in text


def test_without_a_fleet_file_it_plans_against_the_live_agents(
    edgewave: Edgewave, crds: clusters.DevCluster, namespace: str, tmp_path: Path
) -> None:
    region = f"plan-{secrets.token_hex(3)}"
    names = [f"{region}-a", f"{region}-b"]
    agents = [
        {
            "apiVersion": "edgewave.io/v1alpha1",
            "kind": "EdgeAgent",
            "metadata": {"name": name},
            "spec": {"endpoint": f"{name}.example:7443", "region": region},
        }
        for name in names
    ]
    crds.kubectl("apply", "-f", "-", input=kubeyaml.dump_all(agents))
    status = {"runtimes": [{"name": "ONNXRuntime", "version": "1.32.0"}], "reportedRegion": region}
    crds.kubectl(
        "patch",
        "edgeagent",
        names[0],
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    rollout = manifests.example(manifests.GLOBAL_ROLLOUT)
    rollout["metadata"]["namespace"] = namespace
    rollout["spec"]["targets"] = {"regions": [region]}
    rollout["spec"]["strategy"]["waves"] = [{"name": "only", "maxUnavailable": 1}]
    crds.kubectl("apply", "-f", "-", input=kubeyaml.dump(rollout))
    try:
        result = edgewave("plan", "classifier-global", "-n", namespace, "--no-build", "-o", "json")
        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout)
        assert [(t["agent"], t["wave"], t["location"]) for t in document["targets"]] == [
            (names[0], "only", "central")
        ]
        (build,) = document["builds"]
        assert (build["backend"], build["precision"], build["result"]) == (
            "ONNXRuntime",
            "FP32",
            None,
        )
        # The agent that never answered has no runtime to serve the model with.
        assert [(e["agent"], e["reason"]) for e in document["exclusions"]] == [
            (names[1], "NoCompatibleBackend")
        ]
    finally:
        crds.kubectl("delete", "edgeagent", *names, "--wait=false")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("no/such/file.yaml",), "error: no such file: no/such/file.yaml"),
        (("missing-rollout", "-n", "default"), 'error: modelrollout "missing-rollout" not found'),
        (("x.yaml", "--fleet", "/nonexistent/fleet.yaml"), "error: no such file: x.yaml"),
    ],
)
def test_mistakes_are_one_line_and_exit_code_1(
    edgewave: Edgewave, args: tuple[str, ...], message: str
) -> None:
    result = edgewave("plan", *args)
    assert result.returncode == 1
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1


def test_a_bad_fleet_file_is_one_line(edgewave: Edgewave, tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("fleet: bad\nclasses: []\nregions: []\n")
    rollout = ROOT / "docs" / "examples" / manifests.GLOBAL_ROLLOUT
    result = edgewave("plan", str(rollout), "--fleet", str(fleet), "--no-build")
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {fleet}: classes: List should have at least 1 item")
    assert result.stderr.count("\n") == 1
