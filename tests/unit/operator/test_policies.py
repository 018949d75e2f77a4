"""A ResidencyPolicy's status from the rollouts it governs and the agents' state (pure)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from edgewave_api import modelrollout, residencypolicy
from edgewave_operator.handlers import policies
from edgewave_operator.planning import views

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
SHA = "a" * 64


def _rollout(name: str, labels: dict[str, str]) -> modelrollout.ModelRollout:
    return modelrollout.ModelRollout.model_validate(
        {
            "metadata": {"name": name, "namespace": "ml", "labels": labels},
            "spec": {
                "model": {"name": "m", "version": "1.0.0", "uri": "file:///m.onnx", "sha256": SHA},
                "targets": {"regions": ["eu-west", "us-east"]},
                "strategy": {"waves": [{"name": "all", "maxUnavailable": 1}]},
            },
        }
    )


def _policy(status: dict[str, Any] | None = None) -> residencypolicy.ResidencyPolicy:
    body: dict[str, Any] = {
        "metadata": {"name": "eu", "generation": 3},
        "spec": {"selector": {"matchLabels": {"eu": "yes"}}, "allowedRegions": ["eu-west"]},
    }
    if status is not None:
        body["status"] = status
    return residencypolicy.ResidencyPolicy.model_validate(body)


def _agent(name: str, region: str, *, holds: bool = False, reports: str | None = None) -> Any:
    models = (views.HeldModel(name="m", version="1.0.0"),) if holds else ()
    return views.AgentView(name=name, region=region, reported_region=reports, models=models)


EU, US = _agent("eu-0", "eu-west", holds=True), _agent("us-0", "us-east")


@pytest.mark.parametrize(
    ("fleet", "pending_before", "previous", "expected"),
    [
        pytest.param([EU, US], set(), None, (1, 0, 1, 0, "True"), id="compliant"),
        pytest.param(
            [EU, _agent("us-0", "us-east", holds=True)], set(), None, (1, 1, 1, 0, "False"),
            id="us-agent-holds-the-model",
        ),
        pytest.param(
            [EU, _agent("eu-1", "eu-west", holds=True, reports="us-east")], set(), None,
            (1, 1, 1, 0, "False"), id="unprovable-location-counts",
        ),
        pytest.param(
            [EU, US], {("us-0", "m")}, {"evictions": 2}, (1, 0, 1, 3, "True"),
            id="eviction-ended",
        ),
        pytest.param(
            [EU, _agent("us-0", "eu-west")], {("us-0", "m")}, None, (1, 0, 0, 0, "True"),
            id="moved-back-is-no-eviction",
        ),
    ],
)  # fmt: skip
def test_summarize(
    fleet: list[views.AgentView],
    pending_before: set[tuple[str, str]],
    previous: dict[str, Any] | None,
    expected: tuple[int, int, int, int, str],
) -> None:
    rollouts = [_rollout("governed", {"eu": "yes"}), _rollout("other", {})]
    summary = policies.summarize(
        _policy(previous),
        rollouts=rollouts,
        fleet=fleet,
        pending_before=frozenset(pending_before),
        now=T0,
    )
    status = summary.status
    [ready] = status.conditions
    got = (
        status.matched_rollouts, status.violations, status.excluded_agents,
        status.evictions, ready.status.value,
    )  # fmt: skip
    assert got == expected
    assert status.observed_generation == 3 and ready.observed_generation == 3
    assert len(summary.pending) == status.violations
