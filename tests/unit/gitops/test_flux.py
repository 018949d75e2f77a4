"""The Flux example: it names the real API (group, version, kind, phases, conditions).

Flux is not run here; what would silently break the example is checked instead: a
Kustomization that waits on a kind or version the CRDs do not serve, or CEL that names a
phase or condition the operator never writes (the check would then wait until its timeout).
The same vocabulary check covers the Argo CD Lua.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from edgewave_api import modelrollout

REPO = Path(__file__).resolve().parents[3]
FLUX = REPO / "docs" / "gitops" / "flux"
LUA = REPO / "docs" / "gitops" / "argocd" / "edgewave.io" / "ModelRollout" / "health.lua"
CRD = REPO / "charts" / "edgewave-operator" / "crds" / "edgewave.io_modelrollouts.yaml"


def _documents() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(FLUX.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def _kustomization(name: str) -> dict[str, Any]:
    found = [
        d for d in _documents() if d["kind"] == "Kustomization" and d["metadata"]["name"] == name
    ]
    assert len(found) == 1, f"one Kustomization {name} in docs/gitops/flux/"
    return found[0]


def test_rollouts_wait_for_ready_modelrollouts_after_the_operator() -> None:
    rollouts = _kustomization("edgewave-rollouts")["spec"]
    assert rollouts["wait"] is True
    assert rollouts["dependsOn"] == [{"name": "edgewave-operator"}]
    assert _kustomization("edgewave-operator")["spec"]["wait"] is True

    crd = yaml.safe_load(CRD.read_text())["spec"]
    served = {f"{crd['group']}/{v['name']}" for v in crd["versions"] if v["served"]}
    (check,) = rollouts["healthCheckExprs"]
    assert check["kind"] == crd["names"]["kind"] == "ModelRollout"
    assert check["apiVersion"] in served
    assert set(check) == {"apiVersion", "kind", "inProgress", "failed", "current"}
    assert "metadata.generation" in check["inProgress"]
    assert "'Ready'" in check["current"]
    assert "'Degraded'" in check["failed"]


def test_health_checks_name_only_phases_and_conditions_the_api_has() -> None:
    check = _kustomization("edgewave-rollouts")["spec"]["healthCheckExprs"][0]
    cel = " ".join(check[key] for key in ("inProgress", "failed", "current"))
    lua = LUA.read_text()
    phases = {p.value for p in modelrollout.RolloutPhase}
    conditions = {c.value for c in modelrollout.RolloutConditionType}

    cel_names = set(re.findall(r"'([A-Za-z]+)'", cel)) - {"True", "False", "Unknown"}
    assert cel_names <= phases | conditions, cel_names - phases - conditions
    lua_phases = set(re.findall(r'phase == "([A-Za-z]+)"', lua))
    lua_conditions = set(re.findall(r'condition\(status, "([A-Za-z]+)"\)', lua))
    assert lua_phases and lua_phases <= phases, lua_phases - phases
    assert lua_conditions and lua_conditions <= conditions, lua_conditions - conditions
    # Both tools treat the same phases as failed.
    failed = set(re.findall(r"'([A-Za-z]+)'", check["failed"])) - {"Degraded", "Stalled", "True"}
    assert failed == lua_phases


def test_helmrelease_installs_the_chart_from_the_source() -> None:
    documents = _documents()
    (release,) = [d for d in documents if d["kind"] == "HelmRelease"]
    (source,) = [d for d in documents if d["kind"] == "GitRepository"]
    chart = release["spec"]["chart"]["spec"]
    assert (REPO / chart["chart"] / "Chart.yaml").is_file()
    assert chart["sourceRef"] == {
        "kind": "GitRepository",
        "name": source["metadata"]["name"],
        "namespace": source["metadata"]["namespace"],
    }
    assert (
        release["spec"]["install"]["crds"] == release["spec"]["upgrade"]["crds"] == "CreateReplace"
    )
