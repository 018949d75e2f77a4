"""`edgewave residency report` against a real API server, from EdgeAgent statuses."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from edgewave_api import kubeyaml
from edgewave_operator import cli
from edgewave_operator.commands import residency
from edgewave_operator.devcluster import clusters

pytestmark = pytest.mark.integration

DIGEST = "sha256:" + "ab" * 32


def held(model: str, version: str, owner: str) -> dict[str, Any]:
    return {
        "name": model,
        "version": version,
        "digest": DIGEST,
        "backend": "ONNXRuntime",
        "state": "Active",
        "rollout": owner,
    }


@pytest.fixture
def fleet(
    crds: clusters.DevCluster, module_namespace: str, make_rollout: Callable[..., dict[str, Any]]
) -> Iterator[tuple[str, str]]:
    """An EU policy, two rollouts of one model, and three agents reporting what they hold."""
    kube, ns, token = crds, module_namespace, secrets.token_hex(3)
    model, labels = f"clf-{token}", {"edgewave.test/report": token}
    created = [f"residencypolicy/eu-{token}"]
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "edgewave.io/v1alpha1",
            "kind": "ResidencyPolicy",
            "metadata": {"name": f"eu-{token}"},
            "spec": {"selector": {"matchLabels": labels}, "allowedJurisdictions": ["EU"]},
        }
    ]
    for name, rollout_labels in ((f"eu-{token}", labels), (f"free-{token}", {})):
        manifest = make_rollout(name, namespace=ns, labels=rollout_labels)
        manifest["spec"]["model"]["name"] = model
        documents.append(manifest)
    statuses = {
        f"w-{token}": ("eu-west", "EU", [held(model, "1.0.0", f"{ns}/eu-{token}")]),
        f"c-{token}": ("eu-central", "EU", [held(model, "0.9.0", f"{ns}/eu-{token}")]),
        f"u-{token}": (
            "us-east",
            "US",
            [held(model, "1.0.0", f"{ns}/eu-{token}"), held(model, "2.0.0", f"{ns}/free-{token}")],
        ),
    }
    for name, (region, jurisdiction, _) in statuses.items():
        documents.append(
            {
                "apiVersion": "edgewave.io/v1alpha1",
                "kind": "EdgeAgent",
                "metadata": {"name": name},
                "spec": {
                    "endpoint": f"{name}.edge.test:50051",
                    "region": region,
                    "jurisdiction": jurisdiction,
                },
            }
        )
        created.append(f"edgeagent/{name}")
    kube.kubectl("apply", "-f", "-", input=kubeyaml.dump_all(documents))
    for name, (_, _, models) in statuses.items():
        kube.kubectl(
            "patch", "edgeagent", name, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"models": models}}),
        )  # fmt: skip
    yield token, model
    for ref in created:
        kube.kubectl("delete", ref, "--ignore-not-found", "--wait=false")


def report(kube: clusters.DevCluster, namespace: str, *output: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli.build_app(),
        ["residency", "report", "-n", namespace, *output, "--kubeconfig", str(kube.kubeconfig)],
    )
    return result.exit_code, result.stdout


def test_report_shows_where_each_version_is_and_which_policy_allowed_it(
    crds: clusters.DevCluster, module_namespace: str, fleet: tuple[str, str]
) -> None:
    token, model = fleet
    code, out = report(crds, module_namespace, "-o", "json")
    assert code == residency.NON_COMPLIANT_EXIT, out
    found = {r["rollout"]: r for r in json.loads(out)}
    eu = found[f"{module_namespace}/eu-{token}"]
    assert eu["model"] == model
    assert not eu["compliant"]
    placements = {(p["version"], p["region"]): p for p in eu["placements"]}
    assert set(placements) == {("1.0.0", "eu-west"), ("0.9.0", "eu-central"), ("1.0.0", "us-east")}
    assert placements["1.0.0", "eu-west"]["agents"] == [f"w-{token}"]
    assert placements["1.0.0", "eu-west"]["allowedBy"] == [f'ResidencyPolicy "eu-{token}"']
    assert placements["0.9.0", "eu-central"]["compliant"] is True
    us = placements["1.0.0", "us-east"]
    assert us["compliant"] is False
    assert 'region "us-east" is in jurisdiction "US"' in us["violations"][0]

    free = found[f"{module_namespace}/free-{token}"]
    assert [
        (p["version"], p["region"], p["agents"], p["allowedBy"]) for p in free["placements"]
    ] == [("2.0.0", "us-east", [f"u-{token}"], ["no residency rule"])]


def test_report_table_has_one_row_per_placement(
    crds: clusters.DevCluster, module_namespace: str, fleet: tuple[str, str]
) -> None:
    token, _ = fleet
    code, out = report(crds, module_namespace)
    assert code == residency.NON_COMPLIANT_EXIT
    lines = out.splitlines()
    assert lines[0].split() == ["ROLLOUT", "MODEL", "VERSION", "REGION", "AGENTS", "ALLOWED", "BY"]
    eu_west = [line for line in lines if f"w-{token}" in line]
    assert len(eu_west) == 1
    assert f'ResidencyPolicy "eu-{token}"' in eu_west[0]
    assert "eu-west (EU)" in eu_west[0]
    flagged = [line for line in lines if "NOT ALLOWED" in line]
    assert len(flagged) == 1 and "us-east (US)" in flagged[0]
