"""Tenancy at planning: real API server, real operator, real agents.

A ResidencyPolicy that selects a namespace governs a rollout there that carries no labels;
a ResidencyPolicy the operator cannot parse excludes every agent (fail closed) with a
condition naming it and the parse error, until it is deleted.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from edgewave_agent import testing
from edgewave_operator.agents.artifacts import Artifact
from edgewave_operator.agents.client import AgentClient, ClientTls
from edgewave_operator.planning import ownership

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
    assert _condition(fleet, "Ready")["reason"] == "PolicyUnreadable"  # not vacuously Ready
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


def _client(fleet: Fleet, pki: Any, *, agent_id: str) -> AgentClient:
    tls = ClientTls(
        ca_pem=pki.ca.cert_pem, cert_pem=pki.operator.cert_pem, key_pem=pki.operator.key_pem
    )
    endpoint = fleet.host.agents[agent_id].endpoint
    return AgentClient(endpoint, tls=tls, signing_key_pem=pki.signing_key.private_pem)


OTHER_OWNER = ownership.Owner(namespace="other-team", name="theirs", uid="their-uid")


def _place_for_another_owner(fleet: Fleet, pki: Any, *, agent_id: str, model: str) -> str:
    """Put `model` on an agent for another namespace's rollout, as its operator would."""
    path, digest = testing.write_artifact(fleet.host.root, testing.linear_model(scale=31.0))
    tls = ClientTls(
        ca_pem=pki.ca.cert_pem, cert_pem=pki.operator.cert_pem, key_pem=pki.operator.key_pem
    )

    async def place() -> None:
        endpoint = fleet.host.agents[agent_id].endpoint
        async with AgentClient(
            endpoint, tls=tls, signing_key_pem=pki.signing_key.private_pem
        ) as client:
            await client.push(Artifact.from_file(path))
            await client.activate(
                model=model,
                version="9.9.9",
                digest=digest,
                backend="onnxruntime",
                rollout=OTHER_OWNER.uid,
                owner=OTHER_OWNER,
            )

    asyncio.run(place())
    return digest


def test_evictions_by_one_owner_never_touch_anothers_model(
    *,
    fleet: Fleet,
    operators: Operators,
    pki: Any,
    model_files: ModelFiles,
    make_rollout: MakeRollout,
    until: Until,
) -> None:
    # Another tenant's rollout serves the same model name on ue-0 (us-east) and ew-0 (the
    # webhook is not running here: this is what admission cannot see, e.g. two racing creates).
    model = _model(fleet)
    for agent_id in ("ue-0", "ew-0"):
        _place_for_another_owner(fleet, pki, agent_id=agent_id, model=model)
    operators.start()
    uri, sha = model_files(24.0)
    manifest = _rollout(fleet, make_rollout, uri=uri, sha=sha)
    manifest["spec"]["residency"] = {"allowedRegions": ["eu-west", "eu-central"]}
    manifest["spec"]["strategy"]["waves"] = [
        {"name": "all", "regions": ["eu-west", "eu-central"], "maxUnavailable": "50%"}
    ]
    fleet.apply(manifest)
    until(
        lambda: (
            {a: v for a, v in _holders(fleet).items() if a.startswith(("ew-1", "ec"))}
            == {"ew-1": "1.0.0", "ec-0": "1.0.0", "ec-1": "1.0.0"}
        ),
        what="the rollout to reach the EU agents it may replace",
    )
    status = fleet.get("mro", "tenant-model")["status"]
    by_reason = {e["reason"]: e["count"] for e in status["exclusions"]}
    assert by_reason.get("OwnedByAnotherRollout") == 1  # ew-0
    # Residency forbids us-east to this rollout, but ue-0 holds the model for another
    # owner: nothing is evicted there, and ew-0 is not replaced.
    assert not [e for e in fleet.events() if e["reason"] == "ResidencyEviction"]
    assert fleet.host.agents["ue-0"].active(model) == "9.9.9"
    assert fleet.host.agents["ew-0"].active(model) == "9.9.9"
    assert _condition(fleet, "ResidencyCompliant").get("status") == "True"

    # Deleting the rollout removes its own copies only.
    fleet.kube.kubectl("delete", "mro", "tenant-model", "-n", fleet.namespace, "--timeout=60s")
    assert _holders(fleet) == {
        "ew-0": "9.9.9", "ew-1": None, "ec-0": None, "ec-1": None, "ue-0": "9.9.9", "ue-1": None,
    }  # fmt: skip

    async def clean_up() -> None:
        for agent_id in ("ue-0", "ew-0"):
            async with _client(fleet, pki, agent_id=agent_id) as client:
                await client.remove_model(model, rollout=OTHER_OWNER.uid, owner=OTHER_OWNER)

    asyncio.run(clean_up())
