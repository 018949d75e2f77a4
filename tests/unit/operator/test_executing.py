"""The executor carries out reverts as decided, whatever it knows live.

Regression: right after an operator restart the inventory has no live answer from an
agent; the executor used to treat that as "nothing ran before" and remove every version
of the model from the agent. A revert now carries its version, digest, backend and method
(`planning.rollbacks`), and the executor follows it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edgewave_api import edgeagent
from edgewave_operator.agents import executing, links
from edgewave_operator.planning import ownership, rollbacks, stepping
from edgewave_operator.settings import OperatorSettings

OWNER = ownership.Owner(namespace="ml", name="r", uid="u1")


class RecordingLink:
    """An agent that records what it is asked to do."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def rollback(self, model: str, *, rollout: str) -> None:
        self.calls.append(("rollback", {"model": model, "rollout": rollout}))

    async def activate(self, **kwargs: Any) -> None:
        self.calls.append(("activate", kwargs))

    async def remove_model(
        self, model: str, *, rollout: str, owner: ownership.Owner | None = None
    ) -> None:
        self.calls.append(("remove_model", {"model": model, "rollout": rollout, "owner": owner}))


class UnknownLive:
    """`links.Links` of a freshly restarted operator: it has heard from no agent yet."""

    def __init__(self) -> None:
        self.agents: dict[str, RecordingLink] = {}
        self.refreshed: list[str] = []

    async def link(self, name: str) -> links.Link:
        made = self.agents.setdefault(name, RecordingLink(name))
        return made  # type: ignore[return-value]

    async def refresh(self, name: str) -> edgeagent.EdgeAgentStatus | None:
        self.refreshed.append(name)
        return None

    def region_of(self, name: str) -> str:
        return "eu-west"

    def held(self, name: str, model: str) -> tuple[edgeagent.HeldModel, ...]:
        return ()


def revert(method: rollbacks.Method, to_version: str | None = "v1") -> rollbacks.Revert:
    return rollbacks.Revert(
        agent="a",
        model="m",
        from_version="v2",
        to_version=to_version,
        digest="d1" if to_version else "",
        backend="ONNXRuntime" if to_version else "",
        method=method,
    )


@pytest.mark.parametrize(
    ("decided", "expected"),
    [
        (revert(rollbacks.Method.RESTORE), [("rollback", {"model": "m", "rollout": "uid-1"})]),
        (
            revert(rollbacks.Method.ACTIVATE),
            [
                (
                    "activate",
                    {
                        "model": "m",
                        "version": "v1",
                        "digest": "d1",
                        "backend": "onnxruntime",
                        "rollout": "uid-1",
                        "deadline_seconds": OperatorSettings().activate_timeout_seconds,
                        "owner": OWNER,
                    },
                )
            ],
        ),
        (
            revert(rollbacks.Method.REMOVE, to_version=None),
            [("remove_model", {"model": "m", "rollout": "uid-1", "owner": OWNER})],
        ),
    ],
)
def test_a_revert_with_unknown_live_state_does_what_was_decided(
    *, decided: rollbacks.Revert, expected: list[tuple[str, dict[str, Any]]]
) -> None:
    fleet = UnknownLive()
    executor = executing.Executor(links=fleet, settings=OperatorSettings())
    batch = stepping.RevertBatch(reverts=(decided,))
    failures = asyncio.run(executor.revert(batch, rollout="uid-1", owner=OWNER))
    assert failures == {}
    assert fleet.agents["a"].calls == expected
    assert fleet.refreshed == ["a"]


def test_an_agent_with_a_previous_version_is_never_stripped_of_the_model() -> None:
    fleet = UnknownLive()
    executor = executing.Executor(links=fleet, settings=OperatorSettings())
    reverts = tuple(
        revert(method) for method in (rollbacks.Method.RESTORE, rollbacks.Method.ACTIVATE)
    )
    for one in reverts:
        asyncio.run(executor.revert(stepping.RevertBatch(reverts=(one,)), rollout="uid-1"))
    assert [name for name, _ in fleet.agents["a"].calls] == ["rollback", "activate"]
