"""`edgewave agents` against EdgeAgents whose status is written through the status subresource."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgewave_api import kubeyaml
from edgewave_operator.devcluster import clusters

pytestmark = pytest.mark.integration
Edgewave = Callable[..., subprocess.CompletedProcess[str]]


def _agent(name: str, *, region: str) -> dict[str, Any]:
    return {
        "apiVersion": "edgewave.io/v1alpha1",
        "kind": "EdgeAgent",
        "metadata": {"name": name, "labels": {"edgewave.io/fleet": "cli-test"}},
        "spec": {"endpoint": f"{name}.example:7443", "region": region, "jurisdiction": "EU"},
    }


STATUS = {
    "gpu": {
        "name": "NVIDIA RTX 4000 Ada Generation",
        "computeCapability": "8.9",
        "memoryMiB": 20475,
    },
    "runtimes": [{"name": "TensorRTRTX", "version": "1.7.1.116"}],
    "models": [
        {
            "name": "classifier",
            "version": "1.0.0",
            "digest": "sha256:" + "a" * 64,
            "backend": "TensorRTRTX",
            "state": "Active",
        }
    ],
    "lastSeen": "2026-01-02T03:04:05Z",
    "connection": {"connected": True, "gateway": "gw-eu", "since": "2026-01-02T03:00:00Z"},
    "conditions": [
        {
            "type": t,
            "status": "True",
            "reason": "Answered",
            "lastTransitionTime": "2026-01-02T03:04:05Z",
        }
        for t in ("Reachable", "Ready")
    ],
}


@pytest.fixture
def fleet(crds: clusters.DevCluster) -> Iterator[tuple[str, list[str]]]:
    """Two EdgeAgents in a region of their own; the first has a status, the second none."""
    token = secrets.token_hex(3)
    region = f"cli-{token}"
    names = [f"cli-{token}-gpu", f"cli-{token}-new"]
    crds.kubectl(
        "apply", "-f", "-", input=kubeyaml.dump_all([_agent(n, region=region) for n in names])
    )
    crds.kubectl(
        "patch",
        "edgeagent",
        names[0],
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": STATUS}),
    )
    yield region, names
    crds.kubectl("delete", "edgeagent", *names, "--ignore-not-found", "--wait=false")


def test_agents_json_parses_and_carries_what_the_status_says(
    edgewave: Edgewave, fleet: tuple[str, list[str]]
) -> None:
    region, names = fleet
    result = edgewave("agents", "--region", region, "-o", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    by_name = {agent["name"]: agent for agent in document["agents"]}
    assert sorted(by_name) == sorted(names)
    seen = by_name[names[0]]
    assert seen["region"] == region
    assert seen["gpu"]["name"] == "NVIDIA RTX 4000 Ada Generation"
    assert seen["computeCapability"] == "8.9"
    assert seen["health"] == "Ready"
    assert seen["lastSeen"] == "2026-01-02T03:04:05Z"
    assert [(m["name"], m["version"], m["state"]) for m in seen["models"]] == [
        ("classifier", "1.0.0", "Active")
    ]
    fresh = by_name[names[1]]
    assert fresh["health"] == "Unknown"
    assert fresh["connection"] is None
    assert seen["connection"] == STATUS["connection"]
    assert fresh["gpu"] is None
    assert fresh["models"] == []


def test_agents_yaml_is_the_same_document(edgewave: Edgewave, fleet: tuple[str, list[str]]) -> None:
    region, _ = fleet
    as_json = json.loads(edgewave("agents", "--region", region, "-o", "json").stdout)
    as_yaml = yaml.safe_load(edgewave("agents", "--region", region, "-o", "yaml").stdout)
    assert as_yaml == as_json


def test_agents_tables_show_gpu_and_health_and_wide_shows_the_endpoint(
    edgewave: Edgewave, fleet: tuple[str, list[str]]
) -> None:
    region, names = fleet
    table = edgewave("agents", "--region", region)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "NAME", "REGION", "GPU", "CC", "MODELS", "HEALTH", "CONNECTED", "LAST", "SEEN"
    ]  # fmt: skip
    row = next(line for line in lines if line.startswith(names[0]))
    assert "8.9" in row and "classifier:1.0.0" in row and "Ready" in row
    assert "yes (gw-eu)" in row
    wide = edgewave("agents", "--region", region, "-o", "wide")
    assert f"{names[0]}.example:7443" in wide.stdout
    assert "TensorRTRTX 1.7.1.116" in wide.stdout


def test_an_empty_region_says_so(edgewave: Edgewave) -> None:
    result = edgewave("agents", "--region", "nowhere-at-all")
    assert result.returncode == 0
    assert result.stdout.strip() == "no EdgeAgents in region nowhere-at-all"


def test_an_unknown_output_format_is_a_usage_error(edgewave: Edgewave) -> None:
    result = edgewave("agents", "-o", "xml")
    assert result.returncode == 2
    assert "xml" in result.stderr


def test_it_runs_as_a_kubectl_plugin(
    crds: clusters.DevCluster, fleet: tuple[str, list[str]]
) -> None:
    region, names = fleet
    scripts = Path(sys.executable).parent
    # The entry point is declared in pyproject.toml; a missing one is a broken install.
    assert (scripts / "kubectl-edgewave").is_file(), f"no kubectl-edgewave in {scripts}"
    env = {
        **os.environ,
        "KUBECONFIG": str(crds.kubeconfig),
        "PATH": f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    result = subprocess.run(
        [str(crds.bin_dir / "kubectl"), "edgewave", "agents", "--region", region, "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(a["name"] for a in json.loads(result.stdout)["agents"]) == sorted(names)
