"""A served model belongs to the rollout that activated it: a real agent process refuses an
Activate (or a Remove) from another owner, and keeps serving."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton

from edgewave_agent import testing
from edgewave_api import grants
from edgewave_operator.agents import errors
from edgewave_operator.agents.artifacts import Artifact
from edgewave_operator.agents.client import AgentClient
from edgewave_operator.planning import ownership
from edgewave_proto.agent.v1 import agent_pb2 as pb

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
            rollout=owner.uid if owner else "", owner=owner,
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
                await client.remove_model("shared", rollout=TEAM_B.uid, owner=TEAM_B)
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
            await client.remove_model("shared", rollout=recreated.uid, owner=recreated)
            # Gone with its model: a new owner starts from nothing.
            await deploy(client, mine, version="b-4", owner=TEAM_B)

    asyncio.run(owner_acts())


def test_an_owner_changed_in_transit_without_a_new_grant_is_refused(
    start_agent: Callable[..., testing.AgentProcess],
    connect: Callable[..., AgentClient],
    tmp_path: Path,
) -> None:
    """What a gateway relaying the call could try: the grant is for team-a, the request's
    owner field says team-b (or the owner field is dropped). The owner comes from the grant,
    so the change is refused, and the grant as signed still works afterwards."""
    agent = start_agent("edge-relayed")
    path, digest = testing.write_artifact(tmp_path, testing.linear_model(scale=2.0))

    def request(grant: pb.Grant, owner: ownership.Owner | None) -> pb.ActivateRequest:
        made = pb.ActivateRequest(
            model="shared", version="a-1", digest=digest, backend="onnxruntime", grant=grant
        )  # fmt: skip
        if owner is not None:
            made.owner.CopyFrom(
                pb.ModelOwner(namespace=owner.namespace, name=owner.name, uid=owner.uid)
            )
        return made

    async def scenario() -> None:
        async with connect(agent) as client:
            await client.push(Artifact.from_file(path))
            call = grants.Call(
                action=grants.Action.ACTIVATE, agent="", model="shared", version="a-1",
                digest=digest, backend="onnxruntime",
            )  # fmt: skip
            grant = await client.grant(call, rollout=TEAM_A.uid, owner=TEAM_A)
            for forged, reason in (
                (TEAM_B, "owner.namespace is 'team-b' but the grant's is 'team-a'"),
                (
                    ownership.Owner(namespace="team-a", name="classifier", uid="uid-b"),
                    "owner.uid is 'uid-b' but the grant's rollout is 'uid-a'",
                ),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await client._stub.Activate(request(grant, forged))
                assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
                assert reason in (caught.value.details() or ""), caught.value.details()
            assert not (await client.status()).models
            # Dropping the owner field changes nothing: the grant's owner is recorded.
            await client._stub.Activate(request(grant, None))
            (model,) = (await client.status()).models
            assert (model.owner.namespace, model.owner.name, model.owner.uid) == (
                "team-a", "classifier", "uid-a",
            )  # fmt: skip
            # A grant for team-b is needed to act as team-b, and team-a owns the model.
            theirs = await client.grant(
                grants.Call(
                    action=grants.Action.REMOVE, agent="", model="shared", all_versions=True
                ),
                rollout=TEAM_B.uid,
                owner=TEAM_B,
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await client._stub.Remove(
                    pb.RemoveRequest(model="shared", all_versions=True, grant=theirs)
                )
            assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
            assert "owned by ModelRollout team-a/classifier" in (caught.value.details() or "")

    asyncio.run(scenario())
