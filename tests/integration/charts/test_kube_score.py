"""kube-score, a chart linter platform teams run, on what the charts RENDER.

Linting a chart directory lints templates, not objects: it finds nothing and passes. So both
charts are rendered by the pinned helm (the operator chart with its default values, the agent
chart with the values its CI uses) and every object goes through kube-score, built from its
pinned Go module (`tools/kube-score/`, cached like helm). No finding may remain: a check that
does not apply is skipped by a `kube-score/ignore` annotation on the object, next to a comment
that says why, and this test lists those annotations so a new one is a reviewed change.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgewave_api import kubeyaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
OPERATOR = REPO / "charts" / "edgewave-operator"
AGENT = REPO / "charts" / "edgewave-agent"
GRADE_ALL_OK = 10
# chart -> object (kind/name) -> the checks it skips by annotation, explained in its template:
# no CPU limit on purpose (requests and memory limits are asserted below instead), IfNotPresent
# for immutable releases, and the agent's root init container that chowns its hostPath store.
EXPLAINED: dict[str, dict[str, set[str]]] = {
    "operator": {
        "Deployment/ew-edgewave-operator": {"container-resources", "container-image-pull-policy"},
        "Job/ew-edgewave-operator-webhook-certificate": {"container-image-pull-policy"},
    },
    "agent": {
        "DaemonSet/ew-edgewave-agent": {
            "container-resources",
            "container-image-pull-policy",
            "container-security-context-user-group-id",
        },
    },
}


def _build(script: str) -> Path:
    built = subprocess.run(
        [str(REPO / "tools" / script)], capture_output=True, text=True, timeout=1800, check=False
    )
    assert built.returncode == 0, f"tools/{script} failed:\n{built.stderr}"
    return Path(built.stdout.strip())


@pytest.fixture(scope="module")
def kube_score() -> Path:
    return _build("kube-score/build.sh")


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    helm = _build("helm/build.sh")
    kube_version = re.search(
        r"^\s*k8s\.io/kubernetes (v[0-9.]+)\s*$",
        (REPO / "tools" / "controlplane" / "go.mod").read_text(),
        re.MULTILINE,
    )
    assert kube_version
    charts = {
        "operator": [str(OPERATOR)],
        "agent": [str(AGENT), "-f", str(AGENT / "ci" / "test-values.yaml")],
    }
    out: dict[str, str] = {}
    for name, args in charts.items():
        result = subprocess.run(
            [str(helm), "template", "ew", *args, "--namespace=edgewave-system",
             f"--kube-version={kube_version.group(1)}"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        out[name] = result.stdout
    return out


def _score(kube_score: Path, manifests: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(kube_score), "score", "-", "--output-format=json", "--kubernetes-version=v1.34"],
        input=manifests,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stderr == "", result.stderr
    scored: list[dict[str, Any]] = json.loads(result.stdout)
    return scored


@pytest.mark.parametrize("chart", ["operator", "agent"])
def test_no_finding_on_the_rendered_chart(
    kube_score: Path, rendered: dict[str, str], chart: str
) -> None:
    objects = _score(kube_score, rendered[chart])
    scored_kinds = {o["type_meta"]["kind"] for o in objects}
    # kube-score really looked at the workload (an empty input would pass too).
    assert scored_kinds >= ({"Deployment"} if chart == "operator" else {"DaemonSet"})
    findings = [
        f"{o['object_name']}: {c['check']['id']} "
        + "; ".join(f"{m['path']} {m['summary']}".strip() for m in c["comments"] or [])
        for o in objects
        for c in o["checks"]
        if not c["skipped"] and c["grade"] < GRADE_ALL_OK
    ]
    assert findings == []


@pytest.mark.parametrize("chart", ["operator", "agent"])
def test_every_skip_is_an_explained_annotation(rendered: dict[str, str], chart: str) -> None:
    skipped = {
        f"{doc['kind']}/{doc['metadata']['name']}": {
            check.strip()
            for check in doc["metadata"]["annotations"]["kube-score/ignore"].split(",")
        }
        for doc in yaml.safe_load_all(rendered[chart])
        if doc and "kube-score/ignore" in (doc["metadata"].get("annotations") or {})
    }
    assert skipped == EXPLAINED[chart]


def test_the_linter_finds_what_it_should(kube_score: Path) -> None:
    # The assertion above can fail: a bare Deployment is full of findings.
    bare = kubeyaml.dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "bare"},
            "spec": {
                "selector": {"matchLabels": {"app": "bare"}},
                "template": {
                    "metadata": {"labels": {"app": "bare"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            },
        }
    )
    (scored,) = _score(kube_score, bare)
    failed = {c["check"]["id"] for c in scored["checks"] if c["grade"] < GRADE_ALL_OK}
    assert {"container-resources", "container-security-context-user-group-id"} <= failed


@pytest.mark.parametrize("chart", ["operator", "agent"])
def test_what_the_skipped_resource_check_covers_is_set(
    rendered: dict[str, str], chart: str
) -> None:
    # container-resources is skipped only for the missing CPU limit; the rest of it holds.
    pods = [
        doc["spec"]["template"]["spec"]
        for doc in yaml.safe_load_all(rendered[chart])
        if doc and doc["kind"] in {"Deployment", "DaemonSet", "Job"}
    ]
    containers = [c for pod in pods for c in [*pod.get("initContainers", []), *pod["containers"]]]
    assert containers
    for container in containers:
        resources = container["resources"]
        assert {"cpu", "memory", "ephemeral-storage"} <= set(resources["requests"]), container[
            "name"
        ]
        assert {"memory", "ephemeral-storage"} <= set(resources["limits"]), container["name"]
