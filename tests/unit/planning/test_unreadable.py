"""Planning fails closed on a ResidencyPolicy it cannot parse (`planning.unreadable`).

Without the rule the policy would be ignored and every agent stay a target: each case
below fails then.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from edgewave_api import conditions as api_conditions
from edgewave_api import modelrollout
from edgewave_operator.planning import reconciling, unreadable, views

T0 = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
SHA = "a" * 64


def rollout() -> modelrollout.ModelRollout:
    return modelrollout.ModelRollout.model_validate(
        {
            "metadata": {"name": "r", "namespace": "ml", "uid": "u1", "generation": 1},
            "spec": {
                "model": {"name": "m", "version": "v2", "uri": "file:///m.onnx", "sha256": SHA},
                "targets": {"regions": ["eu-west"]},
                "strategy": {"waves": [{"name": "all"}]},
            },
        }
    )


def held() -> views.HeldModel:
    return views.HeldModel(
        name="m", version="v1", digest="d-v1", backend="ONNXRuntime", state=views.ModelState.ACTIVE
    )


GOOD = {
    "metadata": {"name": "eu"},
    "spec": {"allowedRegions": ["eu-west"]},
}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"metadata": {"name": "p"}, "spec": {"allowedRegions": "eu-west"}}, "allowedRegions"),
        ({"metadata": {"name": "p"}, "spec": {}}, "spec"),
        ({"metadata": {"name": "p"}}, "spec"),
        (
            {"metadata": {"name": "p"}, "spec": {"allowedRegions": ["a"], "deniedRegions": ["a"]}},
            "both",
        ),
    ],
)
def test_read_keeps_what_does_not_parse(body: dict[str, Any], error: str) -> None:
    found = unreadable.read("p", body)
    assert isinstance(found, unreadable.UnreadablePolicy)
    assert found.name == "p"
    assert error in found.error


def test_read_parses_a_good_policy() -> None:
    assert not isinstance(unreadable.read("eu", GOOD), unreadable.UnreadablePolicy)


def test_split_separates_parsed_from_unreadable() -> None:
    good = unreadable.read("eu", GOOD)
    bad = unreadable.UnreadablePolicy(name="p", error="spec: bad")
    parsed, broken = unreadable.split([good, bad])
    assert parsed == (good,) and broken == (bad,)


def test_an_unreadable_policy_excludes_every_agent_with_a_condition_and_evicts_nothing() -> None:
    agent = views.AgentView(name="w-0", region="eu-west", models=(held(),))
    bad = unreadable.UnreadablePolicy(name="broken", error="spec.allowedRegions: not a list")
    snapshot = reconciling.Snapshot(
        rollout=rollout(), fleet=(agent,), policies=(), now=T0, unreadable=(bad,)
    )
    decision = reconciling.decide(snapshot)
    assert decision.targets.targets == ()
    [excluded] = decision.targets.excluded
    assert excluded.agent == "w-0"
    assert "ResidencyPolicy/broken" in excluded.source and "not a list" in excluded.source
    assert decision.evictions == ()
    condition = api_conditions.find_condition(
        decision.status.conditions, modelrollout.RolloutConditionType.RESIDENCY_COMPLIANT
    )
    assert condition is not None
    assert condition.status is api_conditions.ConditionStatus.FALSE
    assert condition.reason == unreadable.REASON
    assert "ResidencyPolicy/broken" in condition.message and "not a list" in condition.message
    ready = api_conditions.find_condition(
        decision.status.conditions, modelrollout.RolloutConditionType.READY
    )
    assert ready is not None and ready.status is api_conditions.ConditionStatus.FALSE
    assert ready.reason == unreadable.REASON
    assert decision.eligibility.why_not(agent) is not None  # the executor's last check too


def test_without_unreadable_policies_the_agent_is_a_target() -> None:
    agent = views.AgentView(name="w-0", region="eu-west", models=(held(),))
    decision = reconciling.decide(
        reconciling.Snapshot(rollout=rollout(), fleet=(agent,), policies=(), now=T0)
    )
    assert [a.name for a in decision.targets.targets] == ["w-0"]
