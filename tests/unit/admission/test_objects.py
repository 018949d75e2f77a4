"""Admission over the API's own models: which rules bind a rollout, which fields violate them."""

from __future__ import annotations

from typing import Any

import pytest

from edgewave_api import edgeagent, modelrollout, residencypolicy
from edgewave_operator.admission import objects

SHA = "271bf7a607d6af6d389cb4e0190934f272c887d9bc544063918cde8ad8bdcc2c"


def rollout(
    *,
    targets: list[str] | None = None,
    waves: list[list[str] | None] | None = None,
    labels: dict[str, str] | None = None,
    namespace: str = "team-a",
    residency: dict[str, Any] | None = None,
) -> modelrollout.ModelRollout:
    spec: dict[str, Any] = {
        "model": {"name": "m", "version": "1", "uri": "file:///m.onnx", "sha256": SHA},
        "targets": {"regions": targets} if targets else {"selector": {}},
        "strategy": {
            "waves": [
                {"name": f"w{i}", **({"regions": regions} if regions else {})}
                for i, regions in enumerate(waves or [None])
            ]
        },
    }
    if residency is not None:
        spec["residency"] = residency
    return modelrollout.ModelRollout.model_validate(
        {
            "metadata": {"name": "r", "namespace": namespace, "labels": labels or {}},
            "spec": spec,
        }
    )


def policy(name: str, **spec: Any) -> residencypolicy.ResidencyPolicy:
    return residencypolicy.ResidencyPolicy.model_validate(
        {"metadata": {"name": name}, "spec": spec}
    )


def agent(name: str, region: str, jurisdiction: str | None) -> edgeagent.EdgeAgent:
    spec = {"endpoint": f"{name}:50051", "region": region}
    if jurisdiction:
        spec["jurisdiction"] = jurisdiction
    return edgeagent.EdgeAgent.model_validate({"metadata": {"name": name}, "spec": spec})


EU = {"edgewave.io/residency": "eu"}
EU_ONLY = policy(
    "eu-only",
    selector={"matchLabels": EU},
    allowedRegions=["eu-west", "eu-central"],
    deniedRegions=["us-east"],
)
EU_LAW = policy("eu-law", selector={"matchLabels": EU}, allowedJurisdictions=["EU"])
TEAM_B_ONLY = policy("team-b", namespaces=["team-b"], allowedRegions=["eu-west"])
ANYWHERE_BUT_APAC = policy("no-apac", deniedRegions=["ap-south"])
POLICIES = [EU_ONLY, EU_LAW, TEAM_B_ONLY, ANYWHERE_BUT_APAC]
FLEET = objects.jurisdictions(
    [
        agent("a1", "eu-west", "EU"),
        agent("a2", "eu-central", "EU"),
        agent("a3", "us-east", "US"),
        agent("a4", "ap-south", None),
    ]
)

# (case, rollout, expected (path, policy) pairs)
CASES: list[tuple[str, modelrollout.ModelRollout, list[tuple[str, str | None]]]] = [
    ("compliant EU rollout", rollout(targets=["eu-west", "eu-central"], labels=EU), []),
    (
        "us-east in the third wave under EU policies",
        rollout(waves=[["eu-west"], ["eu-central"], ["us-east"]], labels=EU),
        [
            ("spec.strategy.waves[2].regions[0]", "eu-only"),
            ("spec.strategy.waves[2].regions[0]", "eu-law"),
        ],
    ),
    (
        "explicit us-east target under EU policies",
        rollout(targets=["eu-west", "us-east"], labels=EU),
        [("spec.targets.regions[1]", "eu-only"), ("spec.targets.regions[1]", "eu-law")],
    ),
    (
        "unlabelled rollout is bound only by the cluster-wide policy",
        rollout(targets=["us-east"]),
        [],
    ),
    (
        "cluster-wide deny binds every rollout",
        rollout(targets=["ap-south"]),
        [("spec.targets.regions[0]", "no-apac")],
    ),
    (
        "namespaced policy binds only in its namespace",
        rollout(targets=["eu-central"], namespace="team-b"),
        [("spec.targets.regions[0]", "team-b")],
    ),
    (
        "policyRef binds a policy whose selector does not match",
        rollout(targets=["us-east"], residency={"policyRef": {"name": "eu-only"}}),
        [("spec.targets.regions[0]", "eu-only")],
    ),
    (
        "policyRef that names nothing is refused",
        rollout(targets=["eu-west"], residency={"policyRef": {"name": "gone"}}),
        [("spec.residency.policyRef.name", "gone")],
    ),
    (
        "own jurisdictions refuse us-east",
        rollout(targets=["eu-west", "us-east"], residency={"allowedJurisdictions": ["EU"]}),
        [("spec.targets.regions[1]", None)],
    ),
    (
        "a region without a declared jurisdiction is refused only by what is known",
        rollout(targets=["ap-south"], residency={"allowedJurisdictions": ["EU"]}),
        [("spec.targets.regions[0]", "no-apac")],
    ),
]


@pytest.mark.parametrize(("subject", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rollout_violations(
    subject: modelrollout.ModelRollout, expected: list[tuple[str, str | None]]
) -> None:
    violations = objects.check_rollout(subject, policies=POLICIES, jurisdictions=FLEET)
    assert sorted((v.path, v.policy or "") for v in violations) == sorted(
        (path, name or "") for path, name in expected
    )


def test_region_refs_cover_targets_and_every_wave() -> None:
    spec = rollout(targets=["eu-west", "eu-central"], waves=[["eu-west"], ["eu-central"], None])
    assert [(r.path, r.region) for r in objects.region_refs(spec.spec)] == [
        ("spec.targets.regions[0]", "eu-west"),
        ("spec.targets.regions[1]", "eu-central"),
        ("spec.strategy.waves[0].regions[0]", "eu-west"),
        ("spec.strategy.waves[1].regions[0]", "eu-central"),
    ]


def test_jurisdictions_are_needed_only_when_a_rule_allows_jurisdictions() -> None:
    bound, _ = objects.bindings(rollout(targets=["eu-west"]), POLICIES)
    assert not objects.needs_jurisdictions(bound)
    bound, _ = objects.bindings(rollout(targets=["eu-west"], labels=EU), POLICIES)
    assert objects.needs_jurisdictions(bound)


def test_own_allowed_region_outside_a_policy_is_a_warning_not_an_error() -> None:
    subject = rollout(
        targets=["eu-west"], labels=EU, residency={"allowedRegions": ["eu-west", "us-east"]}
    )
    assert objects.check_rollout(subject, policies=POLICIES, jurisdictions=FLEET) == []
    warnings = objects.warnings(subject, policies=POLICIES, jurisdictions=FLEET)
    assert warnings
    assert all(w.startswith('spec.residency.allowedRegions[1]: region "us-east"') for w in warnings)


def test_policy_whose_allowed_region_lies_outside_its_jurisdictions_is_refused() -> None:
    mixed = policy("mixed", allowedRegions=["eu-west", "us-east"], allowedJurisdictions=["EU"])
    [violation] = objects.check_policy(mixed, jurisdictions=FLEET)
    assert violation.path == "spec.allowedRegions"
    assert violation.region == "us-east"
    assert objects.check_policy(EU_ONLY, jurisdictions=FLEET) == []


def test_a_region_of_unknown_jurisdiction_is_admitted_with_a_warning() -> None:
    subject = rollout(targets=["eu-west", "ap-east"], residency={"allowedJurisdictions": ["EU"]})
    assert objects.check_rollout(subject, policies=POLICIES, jurisdictions=FLEET) == []
    [warning] = objects.warnings(subject, policies=POLICIES, jurisdictions=FLEET)
    assert warning.startswith('spec.targets.regions[1]: region "ap-east" has no known jurisdiction')
