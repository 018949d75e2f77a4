"""Residency: who may hold a model, why not, and what must be evicted."""

from __future__ import annotations

import pytest

from edgewave_operator.planning import residency, views

Reason = residency.Reason
ACTIVE = views.ModelState.ACTIVE

EU_ONLY = residency.ResidencyRule(
    source="ResidencyPolicy/eu-only",
    allowed_regions=frozenset({"eu-west", "eu-central"}),
    allowed_jurisdictions=frozenset({"EU"}),
)
SPEC = residency.ResidencyRule(source="spec.residency", denied_regions=frozenset({"eu-central"}))


def agent(name: str, region: str, *, jurisdiction: str = "EU", **kwargs: object) -> views.AgentView:
    return views.AgentView(name=name, region=region, jurisdiction=jurisdiction, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rules", "candidate", "reason", "source"),
    [
        ((), agent("a", "us-east", jurisdiction="US"), None, None),
        ((EU_ONLY,), agent("a", "eu-west"), None, None),
        (
            (EU_ONLY,),
            agent("a", "us-east", jurisdiction="US"),
            Reason.REGION_NOT_ALLOWED,
            EU_ONLY.source,
        ),
        (
            (EU_ONLY,),
            agent("a", "eu-west", jurisdiction="US"),
            Reason.JURISDICTION_NOT_ALLOWED,
            EU_ONLY.source,
        ),
        (
            (EU_ONLY,),
            agent("a", "eu-west", jurisdiction=""),
            Reason.JURISDICTION_NOT_ALLOWED,
            EU_ONLY.source,
        ),
        ((EU_ONLY, SPEC), agent("a", "eu-central"), Reason.REGION_DENIED, SPEC.source),
        ((EU_ONLY, SPEC), agent("a", "eu-west"), None, None),
        # Location disagreements make an agent non-compliant even without any rule.
        ((), agent("a", "eu-west", reported_region="us-east"), Reason.REGION_MISMATCH, "EdgeAgent"),
        ((), agent("a", "eu-west", label_region="us-east"), Reason.LABEL_MISMATCH, "EdgeAgent"),
        (
            (),
            agent("a", "eu-west", reported_jurisdiction="US"),
            Reason.JURISDICTION_MISMATCH,
            "EdgeAgent",
        ),
        ((EU_ONLY,), agent("a", "eu-west", reported_region="eu-west"), None, None),
    ],
)
def test_violation(
    *,
    rules: tuple[residency.ResidencyRule, ...],
    candidate: views.AgentView,
    reason: residency.Reason | None,
    source: str | None,
) -> None:
    found = residency.ResidencyRules(rules=rules).violation(candidate)
    if reason is None:
        assert found is None
    else:
        assert found is not None
        assert (found.reason, found.source) == (reason, source)
        assert candidate.name in found.message


def test_messages_name_region_and_policy() -> None:
    found = residency.ResidencyRules(rules=(EU_ONLY,)).violation(
        agent("x", "us-east", jurisdiction="US")
    )
    assert found is not None
    assert "us-east" in found.message
    assert "ResidencyPolicy/eu-only" in found.message


def test_allowed_regions_intersect_and_subtract_denied() -> None:
    rules = residency.ResidencyRules(rules=(EU_ONLY, SPEC))
    assert rules.allowed_regions() == frozenset({"eu-west"})
    assert residency.ResidencyRules().allowed_regions() is None
    assert rules.sources == ("ResidencyPolicy/eu-only", "spec.residency")


def test_evictions_cover_every_version_held_where_forbidden() -> None:
    held = (
        views.HeldModel(name="resnet", version="v1"),
        views.HeldModel(name="resnet", version="v2", state=ACTIVE),
        views.HeldModel(name="other", version="v9", state=ACTIVE),
    )
    fleet = [
        agent("eu-1", "eu-west", models=held),
        agent("us-1", "us-east", jurisdiction="US", models=held),
        agent("us-2", "us-east", jurisdiction="US"),  # holds nothing: nothing to evict
        agent("eu-moved", "eu-west", models=held, reported_region="us-east"),
    ]
    found = residency.evictions(
        model="resnet", rules=residency.ResidencyRules(rules=(EU_ONLY,)), fleet=fleet
    )
    assert [(e.agent, e.versions, e.violation.reason) for e in found] == [
        ("eu-moved", ("v1", "v2"), Reason.REGION_MISMATCH),
        ("us-1", ("v1", "v2"), Reason.REGION_NOT_ALLOWED),
    ]
