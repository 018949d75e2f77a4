"""The residency webhook on a real API server: refusals name the policy and region, compliant
twins apply, self-contradicting policies are refused, and refusals leave an audit Event."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pytest

from edgewave_operator.devcluster import clusters

pytestmark = pytest.mark.integration


class Served(Protocol):
    kube: clusters.DevCluster

    def kill(self) -> None: ...

    def log(self) -> str: ...


MakeRollout = Callable[..., dict[str, Any]]


@pytest.fixture
def token() -> Iterator[str]:
    yield secrets.token_hex(3)


def apply(
    kube: clusters.DevCluster, manifest: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    return kube.kubectl("apply", *args, "-f", "-", input=json.dumps(manifest), check=False)


def policy(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "edgewave.io/v1alpha1",
        "kind": "ResidencyPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def agent(name: str, *, region: str, jurisdiction: str) -> dict[str, Any]:
    return {
        "apiVersion": "edgewave.io/v1alpha1",
        "kind": "EdgeAgent",
        "metadata": {"name": name},
        "spec": {
            "endpoint": f"{name}.edge.test:50051",
            "region": region,
            "jurisdiction": jurisdiction,
        },
    }


def events_about(
    kube: clusters.DevCluster, *, kind: str, name: str, namespace: str
) -> list[dict[str, Any]]:
    result = kube.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.kind={kind},involvedObject.name={name}",
        "-o",
        "json",
    )
    items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
    return items


@pytest.fixture
def cleanup(served: Served) -> Iterator[list[str]]:
    """Cluster-scoped objects (kind/name) a test created, deleted after it."""
    created: list[str] = []
    yield created
    for ref in created:
        served.kube.kubectl("delete", ref, "--ignore-not-found", "--wait=false")


def test_rollout_targeting_us_east_under_an_eu_only_policy_is_refused_and_its_twin_applies(
    served: Served,
    module_namespace: str,
    token: str,
    cleanup: list[str],
    make_rollout: MakeRollout,
) -> None:
    kube, ns = served.kube, module_namespace
    labels = {"edgewave.test/residency": f"eu-{token}"}
    name = f"eu-only-{token}"
    assert (
        apply(
            kube,
            policy(
                name, selector={"matchLabels": labels}, allowedRegions=["eu-west", "eu-central"]
            ),
        ).returncode
        == 0
    )
    cleanup.append(f"residencypolicy/{name}")

    bad = make_rollout(
        f"bad-{token}",
        namespace=ns,
        labels=labels,
        waves=[["eu-west"], ["eu-central"], ["us-east"]],
    )
    refused = apply(kube, bad)
    assert refused.returncode != 0
    assert "denied the request" in refused.stderr
    assert (
        f'spec.strategy.waves[2].regions[0]: region "us-east" is not allowed by '
        f'ResidencyPolicy "{name}" (allowed: eu-central, eu-west)'
    ) in refused.stderr
    assert kube.kubectl("get", "mro", f"bad-{token}", "-n", ns, check=False).returncode != 0

    [event] = events_about(kube, kind="ResidencyPolicy", name=name, namespace="default")
    assert event["reason"] == "ResidencyRejected"
    assert event["type"] == "Warning"
    assert f"ModelRollout {ns}/bad-{token}" in event["message"]
    assert "us-east" in event["message"]
    # ...and a structured log line with rollout, region and policy.
    lines = [
        json.loads(line.split("residency-audit ", 1)[1])
        for line in served.log().splitlines()
        if "residency-audit " in line
    ]
    assert {
        "decision": "Rejected",
        "rollout": f"{ns}/bad-{token}",
        "region": "us-east",
        "policy": name,
    }.items() <= next(line for line in lines if line["rollout"] == f"{ns}/bad-{token}").items()

    twin = make_rollout(
        f"twin-{token}", namespace=ns, labels=labels, waves=[["eu-west"], ["eu-central"]]
    )
    applied = apply(kube, twin)
    assert applied.returncode == 0, applied.stderr
    assert "Warning" not in applied.stderr

    # Editing the stored twin to reach us-east is refused too, with an Event on the rollout.
    twin["spec"]["strategy"]["waves"][1]["regions"] = ["eu-central", "us-east"]
    updated = apply(kube, twin)
    assert updated.returncode != 0
    assert 'spec.strategy.waves[1].regions[1]: region "us-east"' in updated.stderr
    [on_rollout] = events_about(kube, kind="ModelRollout", name=f"twin-{token}", namespace=ns)
    assert on_rollout["reason"] == "ResidencyRejected"


def test_metadata_updates_pass_even_when_a_newer_policy_forbids_the_stored_spec(
    served: Served,
    module_namespace: str,
    token: str,
    cleanup: list[str],
    make_rollout: MakeRollout,
) -> None:
    kube, ns = served.kube, module_namespace
    labels = {"edgewave.test/residency": f"late-{token}"}
    stored = make_rollout(f"stored-{token}", namespace=ns, labels=labels, targets=["us-east"])
    assert apply(kube, stored).returncode == 0
    late = f"late-{token}"
    assert (
        apply(
            kube, policy(late, selector={"matchLabels": labels}, deniedRegions=["us-east"])
        ).returncode
        == 0
    )
    cleanup.append(f"residencypolicy/{late}")

    # Finalizers and annotations (what the operator writes) are never blocked...
    kube.kubectl("annotate", "mro", f"stored-{token}", "-n", ns, "edgewave.test/touched=yes")
    kube.kubectl(
        "patch",
        "mro",
        f"stored-{token}",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":["edgewave.test/hold"]}}',
    )
    kube.kubectl(
        "patch",
        "mro",
        f"stored-{token}",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":null}}',
    )
    # ...but a spec change must satisfy the policy now in force.
    stored["spec"]["model"]["version"] = "1.0.1"
    refused = apply(kube, stored)
    assert refused.returncode != 0
    assert f'region "us-east" is denied by ResidencyPolicy "{late}"' in refused.stderr


def test_jurisdictions_come_from_edge_agents_and_unknown_ones_are_warned_about(
    served: Served,
    module_namespace: str,
    token: str,
    cleanup: list[str],
    make_rollout: MakeRollout,
) -> None:
    kube, ns = served.kube, module_namespace
    us_region, unknown_region = f"us-{token}", f"nowhere-{token}"
    assert apply(kube, agent(f"edge-{token}", region=us_region, jurisdiction="US")).returncode == 0
    cleanup.append(f"edgeagent/edge-{token}")

    eu_law = make_rollout(f"eu-law-{token}", namespace=ns, targets=[unknown_region, us_region])
    eu_law["spec"]["residency"] = {"allowedJurisdictions": ["EU"]}
    refused = apply(kube, eu_law)
    assert refused.returncode != 0
    assert (
        f'spec.targets.regions[1]: region "{us_region}" is in jurisdiction "US", which '
        "spec.residency does not allow (allowed jurisdictions: EU)"
    ) in refused.stderr
    assert unknown_region not in refused.stderr.split("denied the request")[1]

    # A region no agent has declared yet is admitted (planning checks each agent), with a
    # warning that kubectl shows.
    eu_law["spec"]["targets"]["regions"] = [unknown_region]
    admitted = apply(kube, eu_law)
    assert admitted.returncode == 0, admitted.stderr
    assert f'Warning: spec.targets.regions[0]: region "{unknown_region}" has no known' in (
        admitted.stderr
    )


def test_a_self_contradicting_residency_policy_is_refused(
    served: Served,
    token: str,
    cleanup: list[str],
    make_rollout: MakeRollout,
) -> None:
    kube = served.kube
    us_region = f"us-{token}"
    assert apply(kube, agent(f"edge-{token}", region=us_region, jurisdiction="US")).returncode == 0
    cleanup.append(f"edgeagent/edge-{token}")

    name = f"mixed-{token}"
    refused = apply(
        kube,
        policy(name, allowedRegions=["eu-west", us_region], allowedJurisdictions=["EU"]),
    )
    assert refused.returncode != 0
    assert f'ResidencyPolicy "{name}" contradicts itself' in refused.stderr
    assert f'spec.allowedRegions: region "{us_region}" is in jurisdiction "US"' in refused.stderr
    assert kube.kubectl("get", "residencypolicy", name, check=False).returncode != 0

    coherent = f"coherent-{token}"
    applied = apply(kube, policy(coherent, allowedRegions=["eu-west"], allowedJurisdictions=["EU"]))
    assert applied.returncode == 0, applied.stderr
    cleanup.append(f"residencypolicy/{coherent}")


@pytest.mark.parametrize(
    ("window", "field"),
    [
        ({"schedule": "0 25 * * *", "durationSeconds": 600}, "activationWindow.schedule"),
        ({"schedule": "0 2 * * *", "durationSeconds": 600, "timeZone": "Europe/Atlantis"},
         "activationWindow.timeZone"),
    ],
)  # fmt: skip
def test_a_bad_activation_window_is_refused_naming_the_field(
    *,
    served: Served,
    module_namespace: str,
    token: str,
    make_rollout: MakeRollout,
    window: dict[str, Any],
    field: str,
) -> None:
    manifest = make_rollout(f"windowed-{token}", namespace=module_namespace, targets=["eu-west"])
    manifest["spec"]["strategy"]["activationWindow"] = window
    refused = apply(served.kube, manifest)
    assert refused.returncode != 0
    assert f"first at spec.strategy.{field}:" in refused.stderr, refused.stderr
    assert refused.stderr.strip().count("\n") == 0
