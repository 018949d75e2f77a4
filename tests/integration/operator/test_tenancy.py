"""Tenancy at planning: real API server, real operator, real agents.

A ResidencyPolicy that selects a namespace governs a rollout there that carries no labels;
a ResidencyPolicy the operator cannot parse excludes every agent (fail closed) with a
condition naming it and the parse error, until it is deleted.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Fleet = Any
Operators = Any
ModelFiles = Callable[[float], tuple[str, str]]
MakeRollout = Callable[..., dict[str, Any]]
Until = Callable[..., None]
CRD = "residencypolicies.edgewave.io"


def _model(fleet: Fleet) -> str:
    return f"tenant-{fleet.namespace[-6:]}"


def _rollout(fleet: Fleet, make_rollout: MakeRollout, *, uri: str, sha: str) -> dict[str, Any]:
    manifest: dict[str, Any] = make_rollout(
        "tenant-model", namespace=fleet.namespace, model=_model(fleet),
        version="1.0.0", uri=uri, sha256=sha, waves=[{"name": "all", "maxUnavailable": "50%"}],
    )  # fmt: skip
    assert "labels" not in manifest["metadata"]
    return manifest


def _condition(fleet: Fleet, kind: str) -> dict[str, Any]:
    status = fleet.get("mro", "tenant-model").get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


def _holders(fleet: Fleet) -> dict[str, str | None]:
    model = _model(fleet)
    return {name: agent.active(model) for name, agent in fleet.host.agents.items()}


def test_a_policy_selecting_the_namespace_governs_an_unlabelled_rollout(
    *, fleet: Fleet, operators: Operators, model_files: ModelFiles, make_rollout: MakeRollout
) -> None:
    name = f"{fleet.namespace}-west"
    fleet.apply({
        "apiVersion": "edgewave.io/v1alpha1", "kind": "ResidencyPolicy",
        "metadata": {"name": name},
        "spec": {"namespaces": [fleet.namespace], "allowedRegions": ["eu-west"]},
    })  # fmt: skip
    try:
        operators.start()
        uri, sha = model_files(21.0)
        fleet.apply(_rollout(fleet, make_rollout, uri=uri, sha=sha))
        fleet.kube.kubectl(
            "wait", "--for=condition=Ready", "mro/tenant-model", "-n", fleet.namespace,
            "--timeout=90s",
        )  # fmt: skip
        assert _holders(fleet) == {
            "ew-0": "1.0.0", "ew-1": "1.0.0",
            "ec-0": None, "ec-1": None, "ue-0": None, "ue-1": None,
        }  # fmt: skip
        [exclusion] = fleet.get("mro", "tenant-model")["status"]["exclusions"]
        assert exclusion["reason"] == "RegionNotAllowed" and exclusion["count"] == 4
    finally:
        fleet.kube.kubectl("delete", "residencypolicy", name, "--ignore-not-found")


@pytest.fixture
def unreadable_policy(fleet: Fleet) -> Iterator[str]:
    """A stored ResidencyPolicy that does not parse (`allowedRegions` a string), written
    while the CRD's schema was that of another version (it preserved unknown shapes)."""
    kube, name = fleet.kube, f"{fleet.namespace}-broken"
    original = json.loads(kube.kubectl("get", "crd", CRD, "-o", "json").stdout)
    loose = copy.deepcopy(original)
    for version in loose["spec"]["versions"]:
        properties = version["schema"]["openAPIV3Schema"]["properties"]
        properties["spec"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        loose["metadata"].pop(key, None)
    loose.pop("status", None)
    kube.kubectl("replace", "-f", "-", input=json.dumps(loose))
    try:
        policy = {
            "apiVersion": "edgewave.io/v1alpha1", "kind": "ResidencyPolicy",
            "metadata": {"name": name}, "spec": {"allowedRegions": "eu-west"},
        }  # fmt: skip
        written = False
        for _ in range(50):  # the API server takes the new schema within moments
            if (
                kube.kubectl("create", "-f", "-", input=json.dumps(policy), check=False).returncode
                == 0
            ):
                written = True
                break
            kube.kubectl("get", "crd", CRD)  # a pause that also asks again
        assert written, "the loosened CRD never accepted the policy"
    finally:
        restored = copy.deepcopy(original)
        for key in ("uid", "creationTimestamp", "generation", "managedFields"):
            restored["metadata"].pop(key, None)
        restored["metadata"].pop("resourceVersion", None)
        restored.pop("status", None)
        kube.kubectl("replace", "-f", "-", input=json.dumps(restored))
    yield name
    kube.kubectl("delete", "residencypolicy", name, "--ignore-not-found")


def test_an_unreadable_policy_excludes_every_agent_with_a_condition(
    *,
    fleet: Fleet,
    operators: Operators,
    unreadable_policy: str,
    model_files: ModelFiles,
    make_rollout: MakeRollout,
    until: Until,
) -> None:
    operators.start()
    uri, sha = model_files(22.0)
    fleet.apply(_rollout(fleet, make_rollout, uri=uri, sha=sha))
    until(
        lambda: _condition(fleet, "ResidencyCompliant").get("reason") == "PolicyUnreadable",
        what="ResidencyCompliant=False naming the unreadable policy",
    )
    condition = _condition(fleet, "ResidencyCompliant")
    assert condition["status"] == "False"
    assert f"ResidencyPolicy/{unreadable_policy} cannot be parsed" in condition["message"]
    assert "allowedRegions" in condition["message"]
    status = fleet.get("mro", "tenant-model")["status"]
    assert status["totals"]["excluded"] == 6
    assert all(version is None for version in _holders(fleet).values())

    # Deleting the policy lifts the exclusion: the rollout proceeds everywhere.
    # (Ready is no proof here: with every agent excluded, it holds vacuously.)
    fleet.kube.kubectl("delete", "residencypolicy", unreadable_policy)
    until(
        lambda: set(_holders(fleet).values()) == {"1.0.0"},
        what="every agent to serve the model once the policy is gone",
        timeout=120.0,
    )
    assert _condition(fleet, "ResidencyCompliant").get("status") == "True"


def test_naming_another_tenants_digest_with_another_uri_gets_no_engine(
    *,
    fleet: Fleet,
    operators: Operators,
    model_files: ModelFiles,
    make_rollout: MakeRollout,
    until: Until,
) -> None:
    operators.start()
    uri, sha = model_files(23.0)
    fleet.apply(_rollout(fleet, make_rollout, uri=uri, sha=sha))
    fleet.kube.kubectl(
        "wait", "--for=condition=Ready", "mro/tenant-model", "-n", fleet.namespace,
        "--timeout=90s",
    )  # fmt: skip
    # The owner's model (and its engine) is now cached. A rollout that knows the digest
    # but names a uri that does not yield those bytes gets nothing from that cache.
    taker = make_rollout(
        "taker", namespace=fleet.namespace, model=f"taker-{fleet.namespace[-6:]}",
        version="1.0.0", uri=f"{uri}-absent", sha256=sha,
        waves=[{"name": "all", "maxUnavailable": "50%"}],
    )  # fmt: skip

    def compiled() -> dict[str, Any]:
        status = fleet.get("mro", "taker").get("status") or {}
        return next((c for c in status.get("conditions", []) if c["type"] == "Compiled"), {})

    fleet.apply(taker)
    until(lambda: compiled().get("status") == "False", what="the taker's compile to fail")
    assert compiled()["reason"] == "CompileFailed"
    assert "-absent" in compiled()["message"]
    model = taker["spec"]["model"]["name"]
    assert all(agent.versions(model) == [] for agent in fleet.host.agents.values())
    assert not (fleet.get("mro", "taker").get("status") or {}).get("engines")
