"""Activation, rollback, restart and health against real agent processes."""

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
from edgewave_proto.agent.v1 import agent_pb2 as pb

pytestmark = pytest.mark.integration
BATCH = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)


def _expected(scale: float) -> np.ndarray:
    return BATCH * np.arange(1, 5, dtype=np.float32) * scale + 0.25


def _infer(
    agent: testing.AgentProcess, pki: testing.Pki, *, model: str = "m"
) -> tuple[str, np.ndarray]:
    client = triton.InferenceServerClient(
        agent.serving, ssl=True, root_certificates=str(pki.directory / "ca.pem")
    )
    try:
        request = triton.InferInput("x", list(BATCH.shape), "FP32")
        request.set_data_from_numpy(BATCH)
        result = client.infer(model, [request])
        output = result.as_numpy("y")
        assert output is not None
        return result.get_response().model_version, output
    finally:
        client.close()


async def _deploy(
    client: AgentClient, directory: Path, *, version: str, data: bytes
) -> pb.ActivateResponse:
    path, digest = testing.write_artifact(directory, data)
    await client.push(Artifact.from_file(path))
    return await client.activate(
        rollout="r1", model="m", version=version, digest=digest, backend="onnxruntime"
    )


@pytest.fixture(scope="module")
def agent(module_agents: Callable[..., testing.AgentProcess]) -> testing.AgentProcess:
    return module_agents(
        "edge-activation",
        fault_injection={
            "fail_probe_for_versions": ["m:probe-fails"],
            "fail_requests_for_versions": ["m:errors"],
        },
    )


@pytest.mark.parametrize(
    "case",
    [
        ("garbage", b"this is not an ONNX model" * 40, "cannot load"),
        ("nan", testing.linear_model(scale=9.0, nan=True), "NaN"),
        ("probe-fails", testing.linear_model(scale=8.0), "health probe"),
    ],
)
def test_broken_activation_keeps_the_old_version_serving(
    agent: testing.AgentProcess,
    agent_pki: testing.Pki,
    connect: Callable[..., AgentClient],
    tmp_path: Path,
    case: tuple[str, bytes, str],
) -> None:
    version, data, reason = case

    async def scenario() -> pb.StatusUpdate:
        async with connect(agent) as client:
            await _deploy(client, tmp_path, version="good", data=testing.linear_model(scale=2.0))
            with pytest.raises(errors.AgentRefused, match=reason) as caught:
                await _deploy(client, tmp_path, version=version, data=data)
            assert caught.value.code == "FAILED_PRECONDITION"
            assert not caught.value.temporary
            return await client.status()

    status = asyncio.run(scenario())
    (model,) = status.models
    assert model.active_version == "good"
    failed = {v.version: v for v in model.versions}[version]
    assert failed.state == pb.VERSION_STATE_FAILED and reason in failed.message
    served, output = _infer(agent, agent_pki)
    assert served == "good"
    np.testing.assert_allclose(output, _expected(2.0))


def test_bad_signature_is_refused(
    agent: testing.AgentProcess, connect: Callable[..., AgentClient], tmp_path: Path
) -> None:
    path, digest = testing.write_artifact(tmp_path, testing.linear_model(scale=3.0))
    other_key = __import__("edgewave_api.signing", fromlist=["x"]).new_signing_key()

    async def scenario() -> None:
        async with connect(agent) as client:
            await client.push(Artifact.from_file(path))
            other_version = grants.Call(
                action=grants.Action.ACTIVATE,
                agent="",
                model="m",
                version="other",
                digest=digest,
                backend="onnxruntime",
            )
            granted = await client.grant(other_version, rollout="r1")
            with pytest.raises(grpc.RpcError, match="version is 'other' but the request's is"):
                # Granted for another version.
                await client._stub.Activate(
                    pb.ActivateRequest(
                        model="m", version="signed", digest=digest, backend="onnxruntime",
                        grant=granted,
                    )
                )  # fmt: skip
            async with AgentClient(
                agent.control, tls=client._tls, signing_key_pem=other_key.private_pem
            ) as stranger:
                with pytest.raises(errors.AgentNotAuthorized, match="does not verify"):
                    await stranger.activate(
                        rollout="r1",
                        model="m",
                        version="signed",
                        digest=digest,
                        backend="onnxruntime",
                    )
            described = await client.describe()
            assert all(v.version != "signed" for m in described.models for v in m.versions)

    asyncio.run(scenario())


def test_rollback_restores_the_previous_version(
    start_agent: Callable[..., testing.AgentProcess],
    agent_pki: testing.Pki,
    connect: Callable[..., AgentClient],
    tmp_path: Path,
) -> None:
    agent = start_agent("edge-rollback")

    async def scenario() -> None:
        async with connect(agent) as client:
            await _deploy(client, tmp_path, version="1", data=testing.linear_model(scale=1.0))
            second = await _deploy(
                client, tmp_path, version="2", data=testing.linear_model(scale=5.0)
            )
            assert second.previous_version == "1"
            assert _infer(agent, agent_pki)[0] == "2"
            rolled = await client.rollback("m", rollout="r1")
            assert rolled.rolled_back_from == "2"
            assert rolled.model.active_version == "1"
            with pytest.raises(errors.AgentRefused, match="no previous version"):
                await client.rollback("m", rollout="r1")

    asyncio.run(scenario())
    served, output = _infer(agent, agent_pki)
    assert served == "1"
    np.testing.assert_allclose(output, _expected(1.0))


def test_restart_preserves_the_active_model(
    start_agent: Callable[..., testing.AgentProcess],
    agent_pki: testing.Pki,
    connect: Callable[..., AgentClient],
    tmp_path: Path,
) -> None:
    agent = start_agent("edge-restart")

    async def deploy() -> None:
        async with connect(agent) as client:
            await _deploy(client, tmp_path, version="1", data=testing.linear_model(scale=1.0))
            await _deploy(client, tmp_path, version="2", data=testing.linear_model(scale=4.0))

    asyncio.run(deploy())
    agent.kill()
    agent.start()  # returns once grpc.health.v1 says SERVING

    served, output = _infer(agent, agent_pki)
    assert served == "2"
    np.testing.assert_allclose(output, _expected(4.0))

    async def still_rollbackable() -> None:
        async with connect(agent) as client:
            status = await client.status()
            assert status.ready
            assert status.models[0].previous_version == "1"
            await client.rollback("m", rollout="r1")

    asyncio.run(still_rollbackable())
    assert _infer(agent, agent_pki)[0] == "1"


def test_watch_status_reports_requests_and_errors(
    agent: testing.AgentProcess,
    agent_pki: testing.Pki,
    connect: Callable[..., AgentClient],
    tmp_path: Path,
) -> None:
    async def deploy() -> None:
        async with connect(agent) as client:
            await _deploy(client, tmp_path, version="errors", data=testing.linear_model(scale=6.0))

    asyncio.run(deploy())
    for _ in range(3):
        with pytest.raises(triton.InferenceServerException, match="fault injection"):
            _infer(agent, agent_pki)

    async def watch() -> pb.ModelStatus:
        async with connect(agent) as reader:
            async for update in reader.watch_status(interval_seconds=0.1):
                (model,) = update.models
                if model.health.requests >= 3:
                    return model
        raise AssertionError("the stream ended")

    model = asyncio.run(watch())
    assert model.active_version == "errors"
    assert (model.health.requests, model.health.errors) == (3, 3)
    assert model.health.latency_p95_seconds >= model.health.latency_p50_seconds > 0


def test_remove_refuses_active_and_previous_and_frees_old_versions(
    start_agent: Callable[..., testing.AgentProcess],
    agent_pki: testing.Pki,
    connect: Callable[..., AgentClient],
    tmp_path: Path,
) -> None:
    agent = start_agent("edge-remove")

    async def scenario() -> None:
        async with connect(agent) as client:
            for version, scale in (("1", 1.0), ("2", 2.0), ("3", 3.0)):
                await _deploy(
                    client, tmp_path, version=version, data=testing.linear_model(scale=scale)
                )
            for version in ("3", "2"):
                with pytest.raises(errors.AgentRefused, match="cannot be removed"):
                    await client.remove("m", rollout="r1", version=version)
            removed = await client.remove("m", rollout="r1", version="1")
            assert list(removed.removed_versions) == ["1"]
            assert removed.freed_bytes > 0 and len(removed.deleted_digests) == 1
            described = await client.describe()
            assert removed.deleted_digests[0] not in {a.digest for a in described.artifacts}
            # A residency eviction removes the whole model, the serving versions included.
            everything = await client.remove_model("m", rollout="r1")
            assert sorted(everything.removed_versions) == ["2", "3"]
            described = await client.describe()
            assert not described.models and not described.artifacts
            with pytest.raises(errors.AgentRefused, match="no model m"):
                await client.remove_model("m", rollout="r1")

    asyncio.run(scenario())
    with pytest.raises(triton.InferenceServerException, match="not active"):
        _infer(agent, agent_pki)
