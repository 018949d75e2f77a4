"""The residency report from rollouts, policies and what agents say they hold."""

from __future__ import annotations

from typing import Any

from edgewave_api import edgeagent, modelrollout, residencypolicy
from edgewave_operator.admission import reports

SHA = "271bf7a607d6af6d389cb4e0190934f272c887d9bc544063918cde8ad8bdcc2c"
DIGEST = f"sha256:{SHA}"


def rollout(
    name: str, *, model: str, labels: dict[str, str] | None = None
) -> modelrollout.ModelRollout:
    return modelrollout.ModelRollout.model_validate(
        {
            "metadata": {"name": name, "namespace": "ns", "labels": labels or {}},
            "spec": {
                "model": {"name": model, "version": "2", "uri": "file:///m.onnx", "sha256": SHA},
                "targets": {"selector": {}},
                "strategy": {"waves": [{"name": "all"}]},
            },
        }
    )


def agent(
    name: str, region: str, jurisdiction: str | None, *held: tuple[str, str, str | None]
) -> edgeagent.EdgeAgent:
    spec: dict[str, Any] = {"endpoint": f"{name}:50051", "region": region}
    if jurisdiction:
        spec["jurisdiction"] = jurisdiction
    models = [
        {
            "name": model,
            "version": version,
            "digest": DIGEST,
            "backend": "ONNXRuntime",
            "state": "Active",
            **({"rollout": owner} if owner else {}),
        }
        for model, version, owner in held
    ]
    return edgeagent.EdgeAgent.model_validate(
        {"metadata": {"name": name}, "spec": spec, "status": {"models": models}}
    )


EU = {"data": "eu"}
POLICIES = [
    residencypolicy.ResidencyPolicy.model_validate(
        {
            "metadata": {"name": "eu-only"},
            "spec": {"selector": {"matchLabels": EU}, "allowedJurisdictions": ["EU"]},
        }
    )
]
AGENTS = [
    agent("w1", "eu-west", "EU", ("clf", "2", "ns/eu"), ("clf", "1", None)),
    agent("w2", "eu-west", "EU", ("clf", "2", "ns/eu")),
    agent("c1", "eu-central", "EU", ("clf", "2", None)),
    agent("u1", "us-east", "US", ("clf", "2", "ns/eu"), ("other", "9", None)),
    agent("x1", "ap-south", None, ("clf", "2", "ns/global")),
]


def test_each_version_and_region_says_which_rule_allowed_it() -> None:
    [report] = reports.build(
        rollouts=[rollout("eu", model="clf", labels=EU)], policies=POLICIES, agents=AGENTS[:3]
    )
    assert report.compliant
    assert report.rules == ('ResidencyPolicy "eu-only"',)
    assert [(p.version, p.region, p.agents, p.allowed_by) for p in report.placements] == [
        ("1", "eu-west", ("w1",), ('ResidencyPolicy "eu-only"',)),
        ("2", "eu-central", ("c1",), ('ResidencyPolicy "eu-only"',)),
        ("2", "eu-west", ("w1", "w2"), ('ResidencyPolicy "eu-only"',)),
    ]


def test_a_placement_the_rules_forbid_is_flagged_with_the_reason() -> None:
    [report] = reports.build(
        rollouts=[rollout("eu", model="clf", labels=EU)], policies=POLICIES, agents=AGENTS
    )
    assert not report.compliant
    [us] = [p for p in report.placements if p.region == "us-east"]
    assert us.agents == ("u1",)
    assert us.violations == (
        'region "us-east" is in jurisdiction "US", which ResidencyPolicy "eu-only" does not '
        "allow (allowed jurisdictions: EU)",
    )
    # Models another rollout placed are not this rollout's.
    assert "ap-south" not in [p.region for p in report.placements]


def test_without_a_binding_rule_the_report_says_so() -> None:
    [report] = reports.build(
        rollouts=[rollout("global", model="clf")], policies=POLICIES, agents=AGENTS
    )
    assert report.compliant
    regions = {p.region: p.allowed_by for p in report.placements}
    assert regions["ap-south"] == (reports.NO_RULE,)
    assert "us-east" not in regions  # u1's copy belongs to ns/eu


def test_table_rows_and_json_shape() -> None:
    found = reports.build(
        rollouts=[rollout("eu", model="clf", labels=EU), rollout("idle", model="none")],
        policies=POLICIES,
        agents=AGENTS,
    )
    rows = reports.rows(found)
    assert ("ns/idle", "none", "-", "-", "-", "-") in rows
    [us_row] = [r for r in rows if r[3] == "us-east (US)"]
    assert us_row[5].startswith('NOT ALLOWED: region "us-east"')
    data = found[0].as_dict()
    assert data["rollout"] == "ns/eu"
    assert data["compliant"] is False
    assert {"version", "region", "jurisdiction", "agents", "allowedBy", "compliant"} <= set(
        data["placements"][0]
    )
