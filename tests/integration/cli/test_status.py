"""`edgewave status`: a rollout as the operator wrote it; a missing one is one line and exit 1."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgewave_api import kubeyaml
from edgewave_operator.devcluster import clusters

pytestmark = pytest.mark.integration
Edgewave = Callable[..., subprocess.CompletedProcess[str]]
ROOT = Path(__file__).resolve().parents[3]


def test_a_missing_rollout_is_one_line_and_exit_code_1(edgewave: Edgewave, namespace: str) -> None:
    result = edgewave("status", "no-such-rollout", "-n", namespace)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        f'error: modelrollout "no-such-rollout" not found in namespace "{namespace}"'
    )


def test_json_output_of_a_missing_rollout_is_still_one_line_and_exit_code_1(
    edgewave: Edgewave, namespace: str
) -> None:
    result = edgewave("status", "nope", "-n", namespace, "-o", "json")
    assert (result.returncode, result.stdout, result.stderr.count("\n")) == (1, "", 1)


def test_an_unreachable_api_server_is_one_line_and_exit_code_1(
    edgewave: Edgewave, crds: clusters.DevCluster, tmp_path: Path
) -> None:
    config = yaml.safe_load(crds.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kubeyaml.dump(config))
    result = edgewave("status", "anything", kubeconfig=kubeconfig)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "cannot reach the API server at https://127.0.0.1:1" in result.stderr


STATUS: dict[str, Any] = {
    "observedGeneration": 1,
    "phase": "Progressing",
    "message": "Progressing, wave rest-of-eu progressing: 2/4 updated, 2 excluded",
    "ready": "2/4",
    "currentVersion": "1.0.0",
    "currentWave": "rest-of-eu",
    "conditions": [
        {
            "type": "Ready",
            "status": "False",
            "reason": "WaveInProgress",
            "message": "wave rest-of-eu",
            "observedGeneration": 1,
            "lastTransitionTime": "2026-01-02T03:04:05Z",
        }
    ],
    "waves": [
        {
            "name": "eu-west",
            "phase": "Succeeded",
            "targets": 2,
            "updated": 2,
            "healthy": 2,
            "failed": 0,
            "gate": {"samples": 31, "p95LatencyMs": 2.5, "errorRate": 0.0, "passed": True},
        },
        {"name": "rest-of-eu", "phase": "Progressing", "targets": 2, "updated": 0},
    ],
    "regions": [{"region": "eu-west", "targets": 2, "updated": 2, "healthy": 2, "excluded": 0}],
    "exclusions": [{"reason": "RegionNotAllowed", "count": 2, "examples": ["a-us-1", "a-us-2"]}],
}


def test_status_shows_waves_gate_numbers_and_exclusions(
    edgewave: Edgewave, crds: clusters.DevCluster, namespace: str
) -> None:
    rollout = yaml.safe_load((ROOT / "docs" / "examples" / "modelrollout-eu-only.yaml").read_text())
    rollout["metadata"]["namespace"] = namespace
    # Without the ResidencyPolicy in the cluster, nothing is targeted; the status is what matters.
    crds.kubectl("apply", "-f", "-", input=kubeyaml.dump(rollout))
    crds.kubectl(
        "patch",
        "modelrollout",
        "classifier-eu",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": STATUS}),
    )
    result = edgewave("status", "classifier-eu", "-n", namespace, "-o", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["rollout"] == f"{namespace}/classifier-eu"
    assert document["ready"] is False
    waves = {w["name"]: w for w in document["status"]["waves"]}
    assert waves["eu-west"]["gate"] == {
        "samples": 31,
        "p95LatencyMs": 2.5,
        "errorRate": 0.0,
        "passed": True,
    }
    table = edgewave("status", "classifier-eu", "-n", namespace)
    assert table.returncode == 0, table.stderr
    assert "31 req, p95 2.5 ms, err 0.000 (passed)" in table.stdout
    assert "RegionNotAllowed" in table.stdout
    assert "a-us-1, a-us-2" in table.stdout
    assert "phase Progressing  ready 2/4  wave rest-of-eu" in table.stdout
