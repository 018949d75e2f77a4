"""The audit trail's structured lines, folded exclusion Events and counters."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging

import prometheus_client
import pytest

from edgewave_operator import audit, metrics
from edgewave_operator.kube import events

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def test_the_log_line_is_one_json_object_with_every_field() -> None:
    entry = audit.Entry(
        decision=audit.Decision.EVICTED,
        rollout="team-a/classifier",
        agent="edge-1",
        region="us-east",
        policy="eu-only",
        reason="RegionNotAllowed",
        message="region us-east is not allowed",
    )
    prefix, payload = audit.line(entry).split(" ", 1)
    assert prefix == audit.PREFIX
    assert json.loads(payload) == {
        "decision": "Evicted",
        "rollout": "team-a/classifier",
        "agent": "edge-1",
        "region": "us-east",
        "policy": "eu-only",
        "reason": "RegionNotAllowed",
        "message": "region us-east is not allowed",
    }


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("ResidencyPolicy/eu-only", "eu-only"),
        ('ResidencyPolicy "eu-only"', "eu-only"),
        ("spec.residency", "spec.residency"),
        ("", None),
    ],
)
def test_policy_names_from_rule_sources(source: str, name: str | None) -> None:
    assert audit.policy_name(source) == name


def test_exclusions_fold_into_one_event_per_policy_and_reason() -> None:
    members = [
        audit.Exclusion(
            agent=f"edge-{i}",
            region="us-east",
            reason="RegionNotAllowed",
            message="not allowed by eu-only",
            policy="eu-only",
        )
        for i in range(8)
    ]
    message = audit.exclusion_message(members, policy="eu-only", reason="RegionNotAllowed")
    assert message.startswith("8 agent(s) excluded by eu-only (RegionNotAllowed): edge-0 (us-east)")
    assert "and 3 more" in message
    assert "edge-5" not in message


def test_every_exclusion_is_logged_even_without_an_api_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rollout = events.ObjectRef(kind="ModelRollout", name="r", uid="u", namespace="ns")
    exclusions = [
        audit.Exclusion(
            agent="a", region="us-east", reason="RegionDenied", message="m", policy="p"
        ),
        audit.Exclusion(
            agent="b", region="ap-south", reason="RegionDenied", message="m", policy="p"
        ),
    ]
    with caplog.at_level(logging.INFO, logger="edgewave.audit.residency"):
        asyncio.run(audit.excluded(None, rollout=rollout, exclusions=exclusions, now=NOW))
    lines = [json.loads(r.getMessage().split(" ", 1)[1]) for r in caplog.records]
    assert [(line["agent"], line["rollout"], line["decision"]) for line in lines] == [
        ("a", "ns/r", "Excluded"),
        ("b", "ns/r", "Excluded"),
    ]


def test_rejections_and_evictions_move_the_operator_counters() -> None:
    registry = prometheus_client.CollectorRegistry()
    counters = metrics.OperatorMetrics(registry=registry)
    for decision in (
        audit.Decision.REJECTED,
        audit.Decision.REJECTED,
        audit.Decision.EVICTED,
        audit.Decision.EXCLUDED,
    ):
        entry = audit.Entry(decision=decision, rollout="ns/r", message="m", region="us-east")
        asyncio.run(audit.record(None, entry, about=(), now=NOW, metrics=counters))
    rejected = registry.get_sample_value(
        "edgewave_residency_rejections_total", {"region": "us-east"}
    )
    evicted = registry.get_sample_value("edgewave_residency_evictions_total", {"region": "us-east"})
    assert (rejected, evicted) == (2.0, 1.0)
