"""Rollback goes back to the previous version on every agent serving the new one."""

from __future__ import annotations

import pytest

from edgewave_operator.planning import rollbacks, views

ACTIVE, STANDBY, FAILED = views.ModelState.ACTIVE, views.ModelState.STANDBY, views.ModelState.FAILED


def held(version: str, state: views.ModelState = STANDBY) -> views.HeldModel:
    return views.HeldModel(name="m", version=version, digest=f"d-{version}", state=state)


@pytest.mark.parametrize(
    ("models", "previous", "expected"),
    [
        ((held("v1"), held("v2", ACTIVE)), "v1", ("v1", "d-v1")),
        ((held("v0"), held("v1"), held("v2", ACTIVE)), "v1", ("v1", "d-v1")),
        ((held("v0"), held("v2", ACTIVE)), "v1", ("v0", "d-v0")),  # previous not held
        ((held("v1", FAILED), held("v2", ACTIVE)), "v1", None),  # never back to a failed one
        ((held("v2", ACTIVE),), "v1", None),  # nothing before: remove the new version
        ((held("v1", ACTIVE), held("v2", FAILED)), "v1", "skip"),  # still serves old one
        ((), "v1", "skip"),
    ],
)
def test_plan_reverts(
    *,
    models: tuple[views.HeldModel, ...],
    previous: str,
    expected: tuple[str, str] | str | None,
) -> None:
    agent = views.AgentView(name="a", region="r", models=models)
    reverts = rollbacks.plan_reverts(
        model="m", version="v2", previous_version=previous, agents=[agent]
    )
    if expected == "skip":
        assert reverts == ()
        return
    assert len(reverts) == 1
    revert = reverts[0]
    assert revert.from_version == "v2"
    if expected is None:
        assert revert.to_version is None
    else:
        assert (revert.to_version, revert.digest) == expected


def test_reverts_are_ordered_by_agent_name() -> None:
    models = (held("v1"), held("v2", ACTIVE))
    agents = [views.AgentView(name=n, region="r", models=models) for n in ("c", "a", "b")]
    reverts = rollbacks.plan_reverts(model="m", version="v2", previous_version="v1", agents=agents)
    assert [r.agent for r in reverts] == ["a", "b", "c"]
