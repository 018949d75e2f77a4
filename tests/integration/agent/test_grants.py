"""Grants cannot be replayed, moved to another agent, used late, or left off: real agents.

Each refused call leaves the serving version where it was.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from edgewave_agent import testing
from edgewave_api import grants
from edgewave_operator.agents.artifacts import Artifact
from edgewave_operator.agents.client import AgentClient
from edgewave_proto.agent.v1 import agent_pb2 as pb

pytestmark = pytest.mark.integration


def _activation(version: str, digest: str) -> grants.Call:
    return grants.Call(
        action=grants.Action.ACTIVATE,
        agent="",
        model="m",
        version=version,
        digest=digest,
        backend="onnxruntime",
    )


def _request(version: str, digest: str, grant: pb.Grant) -> pb.ActivateRequest:
    return pb.ActivateRequest(
        model="m", version=version, digest=digest, backend="onnxruntime", grant=grant
    )


async def _refused(call: object, reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert reason in (caught.value.details() or ""), caught.value.details()


async def _active(client: AgentClient) -> str:
    described = await client.describe()
    return next((m.active_version for m in described.models if m.model == "m"), "")


def test_grants_cannot_be_replayed_moved_expired_or_left_off(
    start_agent: Callable[..., testing.AgentProcess],
    connect: Callable[..., AgentClient],
    tmp_path: Path,
) -> None:
    one, two = start_agent("edge-a"), start_agent("edge-b")
    path1, digest1 = testing.write_artifact(tmp_path, testing.linear_model(scale=1.0))
    path2, digest2 = testing.write_artifact(tmp_path, testing.linear_model(scale=2.0))

    async def scenario() -> None:
        async with connect(one) as a, connect(two) as b:
            for client in (a, b):
                await client.push(Artifact.from_file(path1))
                await client.push(Artifact.from_file(path2))
            old = await a.grant(_activation("1", digest1), rollout="uid-1")
            await a._stub.Activate(_request("1", digest1, old))
            await a.activate(
                model="m", version="2", digest=digest2, backend="onnxruntime", rollout="uid-2"
            )
            await b.activate(
                model="m", version="2", digest=digest2, backend="onnxruntime", rollout="uid-2"
            )
            # A downgrade by replaying the grant that activated version 1.
            await _refused(a._stub.Activate(_request("1", digest1, old)), "not above")
            # Agent A's grant, sent to agent B.
            for_a = await a.grant(_activation("1", digest1), rollout="uid-3")
            await _refused(b._stub.Activate(_request("1", digest1, for_a)), "for agent 'edge-a'")
            # A grant signed with a clock an hour behind has expired on arrival.
            async with connect(one, clock=lambda: time.time() - 3600) as late:
                with pytest.raises(Exception, match="expired"):
                    await late.activate(
                        model="m",
                        version="1",
                        digest=digest1,
                        backend="onnxruntime",
                        rollout="uid-4",
                    )
            # No grant at all.
            for unsigned in (
                a._stub.Activate(_request("1", digest1, pb.Grant())),
                a._stub.Rollback(pb.RollbackRequest(model="m")),
                a._stub.Remove(pb.RemoveRequest(model="m", all_versions=True)),
                a._stub.Remove(pb.RemoveRequest(model="m", version="1")),
                a._stub.Build(pb.BuildRequest(spec_json="{}")),
            ):
                await _refused(unsigned, "carries no grant")
            # A rollback grant is not a remove grant.
            rollback = await a.grant(
                grants.Call(action=grants.Action.ROLLBACK, agent="", model="m"), rollout="u"
            )
            await _refused(
                a._stub.Remove(pb.RemoveRequest(model="m", all_versions=True, grant=rollback)),
                "for rollback, not remove",
            )
            assert await _active(a) == "2"
            assert await _active(b) == "2"
            described = await a.describe()
            assert described.grant_sequences["m"] > 0

    asyncio.run(scenario())


def test_a_replica_with_a_slow_clock_signs_above_the_agents_highest(
    start_agent: Callable[..., testing.AgentProcess],
    connect: Callable[..., AgentClient],
    tmp_path: Path,
) -> None:
    agent = start_agent("edge-c")
    path1, digest1 = testing.write_artifact(tmp_path, testing.linear_model(scale=1.0))
    path2, digest2 = testing.write_artifact(tmp_path, testing.linear_model(scale=2.0))

    async def scenario() -> None:
        async with connect(agent) as first:
            await first.push(Artifact.from_file(path1))
            await first.push(Artifact.from_file(path2))
            await first.activate(
                model="m", version="1", digest=digest1, backend="onnxruntime", rollout="u"
            )
        # A new leader, 60 s behind, that has not described the agent yet: its first grant
        # is stale, the agent says its highest, the client signs above it once.
        async with connect(agent, clock=lambda: time.time() - 60, agent_id="edge-c") as second:
            answer = await second.activate(
                model="m", version="2", digest=digest2, backend="onnxruntime", rollout="u"
            )
            assert answer.model.active_version == "2"

    asyncio.run(scenario())
