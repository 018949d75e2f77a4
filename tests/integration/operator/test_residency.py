"""Residency at planning and on drift: real API server, real operator, real agents."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Fleet = Any
Operators = Any
ModelFiles = Callable[[float], tuple[str, str]]
MakeRollout = Callable[..., dict[str, Any]]
Until = Callable[..., None]
POLICY_LABEL = "edgewave.test/policy"

REMOVAL_TIMEOUT = 30.0


def _policy(fleet: Fleet) -> dict[str, Any]:
    return {
        "apiVersion": "edgewave.io/v1alpha1",
        "kind": "ResidencyPolicy",
        "metadata": {"name": f"{fleet.namespace}-eu-only"},
        "spec": {
            "selector": {"matchLabels": {POLICY_LABEL: fleet.namespace}},
            "allowedRegions": ["eu-west", "eu-central"],
            "allowedJurisdictions": ["EU"],
        },
    }


def _eu_rollout(
    fleet: Fleet,
    *,
    make_rollout: MakeRollout,
    uri: str,
    sha: str,
    model: str = "eu-model",
    **kw: Any,
) -> Any:
    manifest = make_rollout(
        "eu-model", namespace=fleet.namespace, model=model, version="1.0.0",
        uri=uri, sha256=sha, waves=[{"name": "all", "maxUnavailable": "50%"}], **kw,
    )  # fmt: skip
    manifest["metadata"]["labels"] = {POLICY_LABEL: fleet.namespace}
    return manifest


def _condition(fleet: Fleet, kind: str) -> dict[str, Any]:
    status = fleet.get("mro", "eu-model").get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


@pytest.fixture
def eu_only(fleet: Fleet, operators: Operators) -> Any:
    """The EU-only policy, deleted only after this test's rollouts are.

    Deleted first, it would let a rollout that still exists place its model on the us-east
    agents (they are its targets once no policy excludes them), and the agents serve the
    whole module: the next test would find, count and evict those copies.
    """
    policy = _policy(fleet)
    fleet.apply(policy)
    yield policy
    if not any(process.alive() for process in operators.started):
        operators.start("op-cleanup")  # someone must run the rollouts' finalizers
    fleet.kube.kubectl(
        "delete", "modelrollouts", "--all", "-n", fleet.namespace, "--timeout=60s", check=False
    )
    fleet.kube.kubectl("delete", "residencypolicy", policy["metadata"]["name"], "--wait=false")


def test_selector_across_three_regions_updates_only_eu_agents(
    *,
    fleet: Fleet,
    operators: Operators,
    eu_only: Any,
    model_files: ModelFiles,
    make_rollout: MakeRollout,
) -> None:
    operators.start()
    uri, sha = model_files(11.0)
    fleet.apply(_eu_rollout(fleet, make_rollout=make_rollout, uri=uri, sha=sha))
    fleet.kube.kubectl(
        "wait", "--for=condition=Ready", "mro/eu-model", "-n", fleet.namespace, "--timeout=90s"
    )
    agents = fleet.host.agents
    assert {a: agents[a].active("eu-model") for a in agents} == {
        "ew-0": "1.0.0", "ew-1": "1.0.0", "ec-0": "1.0.0", "ec-1": "1.0.0",
        "ue-0": None, "ue-1": None,
    }  # fmt: skip
    status = fleet.get("mro", "eu-model")["status"]
    engine = status["engines"][0]["digest"].removeprefix("sha256:")
    assert not [
        r for r in fleet.host.spy.records if r.digest == engine and r.agent.startswith("ue")
    ]
    assert status["ready"] == "4/4"
    assert status["totals"]["excluded"] == 2
    [exclusion] = status["exclusions"]
    assert exclusion["reason"] == "RegionNotAllowed" and exclusion["count"] == 2
    assert {r["region"]: r["excluded"] for r in status["regions"]}["us-east"] == 2
    excluded = [e for e in fleet.events() if e["reason"] == "AgentsExcluded"]
    assert excluded and eu_only["metadata"]["name"] in excluded[-1]["message"]
    assert _condition(fleet, "ResidencyCompliant")["status"] == "True"


def test_relabelling_agents_to_us_east_evicts_and_stops_pushes(
    *,
    fleet: Fleet,
    operators: Operators,
    eu_only: Any,
    model_files: ModelFiles,
    make_rollout: MakeRollout,
    until: Until,
    watch: Callable[..., Any],
) -> None:
    operators.start()
    uri, sha = model_files(12.0)
    manifest = _eu_rollout(
        fleet, make_rollout=make_rollout, uri=uri, sha=sha, pauseBetweenWavesSeconds=5
    )
    manifest["spec"]["strategy"]["waves"] = [
        {"name": "west", "regions": ["eu-west"], "maxUnavailable": 2},
        {"name": "rest", "maxUnavailable": 2},
    ]
    fleet.apply(manifest)
    history = watch("mro", "eu-model", "-n", fleet.namespace)
    host = fleet.host

    def west_done() -> bool:
        status = fleet.get("mro", "eu-model").get("status") or {}
        return any(
            w["name"] == "west" and w["phase"] == "Succeeded" for w in status.get("waves", [])
        )

    until(west_done, what="the first wave")
    assert host.agents["ew-1"].active("eu-model") == "1.0.0"
    # After its update: ew-1 moves to us-east. During the rollout: ec-0 does, before its wave.
    fleet.apply(fleet.manifest(host.agents["ew-1"], region="us-east"))
    fleet.apply(fleet.manifest(host.agents["ec-0"], region="us-east"))
    until(
        lambda: any("ew-1" in e["message"] for e in fleet.events()
                    if e["reason"] == "ResidencyEviction"),
        what="the eviction event",
    )  # fmt: skip
    fleet.kube.kubectl(
        "wait", "--for=condition=Ready", "mro/eu-model", "-n", fleet.namespace, "--timeout=90s"
    )
    until(
        lambda: not host.agents["ew-1"].versions("eu-model"),
        what="ew-1 to lose the model",
        timeout=REMOVAL_TIMEOUT,
    )
    until(
        lambda: _condition(fleet, "ResidencyCompliant").get("status") == "True",
        what="ResidencyCompliant=True once the agent confirmed the removal",
    )
    engine = fleet.get("mro", "eu-model")["status"]["engines"][0]["digest"].removeprefix("sha256:")
    assert host.spy.count(engine, "ec-0") == 0  # never pushed after the relabel
    assert host.spy.count(engine, "ew-1") == 1  # pushed once, before it, never again
    assert host.agents["ec-1"].active("eu-model") == "1.0.0"
    reasons = [e["reason"] for e in fleet.events()]
    assert "ResidencyEvicted" in reasons
    # Until the agent confirmed the removal, the rollout said it was not compliant, and why.
    compliance = [
        c
        for version in history.seen()
        for c in (version.get("status") or {}).get("conditions", [])
        if c["type"] == "ResidencyCompliant"
    ]
    assert any(
        c["status"] == "False"
        and c["reason"] == "ReportedRegionMismatch"
        and "ew-1" in c["message"]
        for c in compliance
    )
    assert compliance[-1]["status"] == "True"
    # The policy counts the model it had removed from ew-1; nothing is left to evict.
    until(
        lambda: _policy_status(fleet, eu_only).get("evictions") == 1,
        what="the policy's status to count the eviction",
    )
    status = _policy_status(fleet, eu_only)
    assert status["violations"] == 0
    assert status["excludedAgents"] == 4  # ue-0, ue-1, and ew-1, ec-0 once relabelled


def _policy_status(fleet: Fleet, policy: dict[str, Any]) -> dict[str, Any]:
    found = fleet.get("rpol", policy["metadata"]["name"], namespaced=False)
    status: dict[str, Any] = found.get("status") or {}
    return status


def test_policy_status_counts_what_it_governs_and_is_written_only_on_change(
    *,
    fleet: Fleet,
    operators: Operators,
    eu_only: Any,
    model_files: ModelFiles,
    make_rollout: MakeRollout,
    until: Until,
    watch: Callable[..., Any],
) -> None:
    name = eu_only["metadata"]["name"]
    history = watch("rpol", name)
    operators.start()
    until(
        lambda: (
            _policy_status(fleet, eu_only).get("matchedRollouts") == 0
            and bool(_policy_status(fleet, eu_only).get("conditions"))
        ),
        what="the policy's first status",
    )
    uri, sha = model_files(13.0)
    # A model of its own: the agents serve this whole module, and the policy counts (and
    # evicts) any copy of its rollouts' model held where it may not be, whoever left it.
    model = "governed"
    assert not any(agent.versions(model) for agent in fleet.host.agents.values())
    fleet.apply(_eu_rollout(fleet, make_rollout=make_rollout, uri=uri, sha=sha, model=model))
    generation = fleet.get("rpol", name, namespaced=False)["metadata"]["generation"]
    # What the policy governs, once the operator knows every agent's location. Before that
    # an agent whose location nothing proves counts as excluded (it is, for the moment), so
    # the first status that counts the rollout may be an early one: wait for the settled one.
    expected = {
        "observedGeneration": generation, "matchedRollouts": 1, "excludedAgents": 2,
        "violations": 0, "evictions": 0,
    }  # fmt: skip
    seen: list[dict[str, Any]] = []

    def settled() -> bool:
        seen.append(_policy_status(fleet, eu_only))
        return {key: seen[-1].get(key) for key in expected} == expected

    try:
        until(settled, what=f"the policy's status to settle at {expected}")
    except AssertionError as error:
        raise AssertionError(f"last policy status: {seen[-1]}\n{error}") from None
    status = seen[-1]
    [ready] = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert ready["status"] == "True" and ready["observedGeneration"] == generation
    assert ready["message"] == "1 rollouts governed; no model held where it is forbidden"
    fleet.kube.kubectl(
        "wait", "--for=condition=Ready", "mro/eu-model", "-n", fleet.namespace, "--timeout=90s"
    )
    # Economy: the agents' status and the rollout's changed many times while it ran; the
    # policy's status, once settled, never changed again (it is written only on change).
    settled_status = json.dumps(status, sort_keys=True)
    statuses = [json.dumps(v.get("status"), sort_keys=True) for v in history.seen()]
    assert settled_status in statuses
    after = statuses[statuses.index(settled_status) :]
    assert set(after) == {settled_status}, after
    assert _policy_status(fleet, eu_only) == status


def test_deletion_removes_the_model_unless_kept(
    *,
    fleet: Fleet,
    operators: Operators,
    model_files: ModelFiles,
    make_rollout: MakeRollout,
    until: Until,
) -> None:
    operators.start()
    uri, sha = model_files(13.0)
    for name, keep in (("dropped", False), ("kept", True)):
        manifest = make_rollout(
            name, namespace=fleet.namespace, model=name, version="1.0.0", uri=uri, sha256=sha,
            waves=[{"name": "all", "maxUnavailable": "100%"}],
        )  # fmt: skip
        if keep:
            manifest["metadata"]["annotations"] = {"edgewave.io/keep-models": "true"}
        fleet.apply(manifest)
    for name in ("dropped", "kept"):
        fleet.kube.kubectl(
            "wait", "--for=condition=Ready", f"mro/{name}", "-n", fleet.namespace, "--timeout=90s"
        )
    fleet.kube.kubectl("delete", "mro", "dropped", "kept", "-n", fleet.namespace, "--timeout=60s")
    agents = fleet.host.agents.values()
    until(
        lambda: not any(a.versions("dropped") for a in agents),
        what="the model to be removed",
        timeout=REMOVAL_TIMEOUT,
    )
    assert all(a.active("kept") == "1.0.0" for a in agents)
