"""A rollout acts only on the versions it owns (`planning.ownership`): decisions in tables."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from edgewave_api import modelrollout
from edgewave_operator.planning import ownership, reconciling, views

T0 = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
SHA = "a" * 64
ME = "ml/r"


def rollout(**residency: Any) -> modelrollout.ModelRollout:
    spec: dict[str, Any] = {
        "model": {"name": "m", "version": "v2", "uri": "file:///m.onnx", "sha256": SHA},
        "targets": {"selector": {}},
        "strategy": {"waves": [{"name": "all"}]},
    }
    if residency:
        spec["residency"] = residency
    return modelrollout.ModelRollout.model_validate(
        {"metadata": {"name": "r", "namespace": "ml", "uid": "u1"}, "spec": spec}
    )


def agent(name: str, region: str, owner: str | None) -> views.AgentView:
    held = views.HeldModel(
        name="m", version="v1", digest="d", backend="ONNXRuntime",
        state=views.ModelState.ACTIVE, owner=owner,
    )  # fmt: skip
    return views.AgentView(name=name, region=region, models=(held,))


@pytest.mark.parametrize(
    ("owner", "evicted"),
    [(ME, True), (None, True), ("other/r", False), ("ml/other", False)],
)
def test_evictions_touch_only_what_the_rollout_owns(owner: str | None, evicted: bool) -> None:
    fleet = (agent("u-0", "us-east", owner),)
    snapshot = reconciling.Snapshot(
        rollout=rollout(allowedRegions=["eu-west"]), fleet=fleet, policies=(), now=T0
    )
    decision = reconciling.decide(snapshot)
    assert [e.agent for e in decision.evictions] == (["u-0"] if evicted else [])
    holders = reconciling.holders(
        model="m", fleet=fleet, keep=False, owner=reconciling.owner_of(snapshot.rollout)
    )
    assert holders == (("u-0",) if evicted else ())


def test_an_agent_serving_the_model_for_another_rollout_is_excluded_not_replaced() -> None:
    fleet = (agent("w-0", "eu-west", "other/r"), agent("w-1", "eu-west", ME))
    decision = reconciling.decide(
        reconciling.Snapshot(rollout=rollout(), fleet=fleet, policies=(), now=T0)
    )
    assert [a.name for a in decision.targets.targets] == ["w-1"]
    [excluded] = decision.targets.excluded
    assert excluded.agent == "w-0" and excluded.reason == ownership.OWNED_ELSEWHERE
    assert "ModelRollout other/r" in excluded.message


def test_other_models_of_an_agent_are_left_as_they_are() -> None:
    mine = ownership.Owner(namespace="ml", name="r")
    other_model = views.HeldModel(name="x", version="1", owner="other/r")
    view = views.AgentView(name="a", region="eu-west", models=(other_model,))
    assert ownership.own_view(view, model="m", owner=mine) is view
    assert ownership.others(view, model="m", owner=mine) is None
