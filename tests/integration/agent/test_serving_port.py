"""The serving port (TLS, no client certificate) tells inference clients what they need,
and no more; WatchStatus streams are capped. Real agent, real TLS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from edgewave_agent import service, testing
from edgewave_operator.agents import errors
from edgewave_operator.agents.artifacts import Artifact
from edgewave_operator.agents.client import AgentClient
from edgewave_proto.agent.v1 import agent_pb2 as pb

pytestmark = pytest.mark.integration


def test_the_serving_port_shows_inference_clients_only_what_they_need(
    start_agent: Callable[..., testing.AgentProcess],
    connect: Callable[..., AgentClient],
    tmp_path: Path,
) -> None:
    agent = start_agent("edge-serving-port", max_status_streams=2)
    path, digest = testing.write_artifact(tmp_path, testing.linear_model(scale=2.0))

    async def scenario() -> None:
        async with connect(agent) as operator, connect(agent, with_cert=False) as anonymous:
            await operator.push(Artifact.from_file(path))
            await operator.activate(
                model="m", version="1", digest=digest, backend="onnxruntime", rollout="u"
            )
            full = await operator.describe()
            assert full.artifacts and full.region and full.disk_free_bytes > 0
            seen = await anonymous.describe()
            assert seen == pb.DescribeResponse(
                agent_id="edge-serving-port",
                models=[pb.ModelStatus(model="m", active_version="1", backend="onnxruntime")],
            )
            with pytest.raises(errors.AgentNotAuthorized, match="UNAUTHENTICATED"):
                await anonymous.stat(digest)
            with pytest.raises(errors.AgentNotAuthorized, match="UNAUTHENTICATED"):
                await anonymous.status()
            # Two streams are the cap; a third is refused until one closes.
            streams: list[AsyncIterator[pb.StatusUpdate]] = [
                operator.watch_status(interval_seconds=0.2) for _ in range(2)
            ]
            for stream in streams:
                await anext(stream)
            with pytest.raises(errors.AgentError, match=r"RESOURCE_EXHAUSTED.*max_status_streams"):
                await operator.status()
            await streams[0].aclose()  # type: ignore[attr-defined]
            for _ in range(50):  # bounded: the agent notices the cancelled stream quickly
                try:
                    assert (await operator.status()).agent_id == "edge-serving-port"
                    break
                except errors.AgentStoreFull:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("the closed stream was never released")
            await streams[1].aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("requested", "expected"),
    [(0.0, 5.0), (0.001, 0.1), (-3.0, 5.0), (2.0, 2.0)],
)
def test_watch_intervals_have_a_floor(requested: float, expected: float) -> None:
    assert service.watch_interval(requested, default=5.0, minimum=0.1) == expected
