"""A served model belongs to the rollout that activated it: a real agent process refuses an
Activate (or a Remove) from another owner, and keeps serving."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton

from edgewave_agent import testing
from edgewave_operator.agents import errors
from edgewave_operator.agents.artifacts import Artifact
from edgewave_operator.agents.client import AgentClient
from edgewave_operator.planning import ownership

pytestmark = pytest.mark.integration
BATCH = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
TEAM_A = ownership.Owner(namespace="team-a", name="classifier", uid="uid-a")
TEAM_B = ownership.Owner(namespace="team-b", name="classifier", uid="uid-b")


def _served(agent: testing.AgentProcess, pki: testing.Pki) -> tuple[str, np.ndarray]:
    client = triton.InferenceServerClient(
        agent.serving, ssl=True, root_certificates=str(pki.directory / "ca.pem")
    )
    try:
        request = triton.InferInput("x", list(BATCH.shape), "FP32")
        request.set_data_from_numpy(BATCH)
        result = client.infer("shared", [request])
        output = result.as_numpy("y")
        assert output is not None
        return result.get_response().model_version, output
    finally:
        client.close()


def test_another_owner_is_refused_and_the_model_keeps_serving(
    start_agent: Callable[..., testing.AgentProcess],
    agent_pki: testing.Pki,
    connect: Callable[..., AgentClient],
    tmp_path: Path,
) -> None:
    agent = start_agent("edge-owners")
    mine, _ = testing.write_artifact(tmp_path, testing.linear_model(scale=2.0))
    theirs, _ = testing.write_artifact(tmp_path, testing.linear_model(scale=5.0))

    async def deploy(
        client: AgentClient, path: Path, *, version: str, owner: ownership.Owner | None
    ) -> None:
        artifact = Artifact.from_file(path)
        await client.push(artifact)
        await client.activate(
            model="shared", version=version, digest=artifact.digest, backend="onnxruntime",
            owner=owner,
        )  # fmt: skip

    async def scenario() -> None:
        async with connect(agent) as client:
            await deploy(client, mine, version="a-1", owner=TEAM_A)
            with pytest.raises(errors.AgentRefused) as refused:
                await deploy(client, theirs, version="b-1", owner=TEAM_B)
            assert refused.value.code == "FAILED_PRECONDITION"
            assert "owned by ModelRollout team-a/classifier, not team-b/classifier" in str(
                refused.value
            )
            with pytest.raises(errors.AgentRefused, match="must name its owner"):
                await deploy(client, theirs, version="b-2", owner=None)
            with pytest.raises(errors.AgentRefused, match="nothing removed"):
                await client.remove_model("shared", owner=TEAM_B)
            (model,) = (await client.status()).models
            assert model.active_version == "a-1"
            assert (model.owner.namespace, model.owner.name, model.owner.uid) == (
                "team-a", "classifier", "uid-a",
            )  # fmt: skip

    asyncio.run(scenario())
    version, output = _served(agent, agent_pki)
    assert version == "a-1"
    np.testing.assert_allclose(output, BATCH * np.arange(1, 5, dtype=np.float32) * 2.0 + 0.25)

    # The owner survives a restart; the owner itself may still replace and remove its model.
    agent.kill()
    agent.start()  # returns once grpc.health.v1 says SERVING

    async def owner_acts() -> None:
        async with connect(agent) as client:
            with pytest.raises(errors.AgentRefused, match="team-a/classifier"):
                await deploy(client, theirs, version="b-3", owner=TEAM_B)
            recreated = ownership.Owner(namespace="team-a", name="classifier", uid="uid-a2")
            await deploy(client, theirs, version="a-2", owner=recreated)
            await client.remove_model("shared", owner=recreated)
            # Gone with its model: a new owner starts from nothing.
            await deploy(client, mine, version="b-4", owner=TEAM_B)

    asyncio.run(owner_acts())
