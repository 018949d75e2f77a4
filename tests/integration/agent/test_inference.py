"""KServe v2 inference through tritonclient.grpc, against a real agent process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import tritonclient.grpc as triton

from edgewave_agent import testing
from edgewave_operator.agents.artifacts import Artifact
from edgewave_operator.agents.client import AgentClient

pytestmark = pytest.mark.integration


def test_tritonclient_infer_matches_onnxruntime(
    start_agent: Callable[..., testing.AgentProcess],
    connect: Callable[..., AgentClient],
    agent_pki: testing.Pki,
    tmp_path: Path,
) -> None:
    model = testing.linear_model(scale=1.5, size=8)
    path, digest = testing.write_artifact(tmp_path, model)
    agent = start_agent()

    async def deploy() -> None:
        async with connect(agent) as client:
            await client.push(Artifact.from_file(path))
            await client.activate(
                rollout="r1", model="resnet", version="7", digest=digest, backend="onnxruntime"
            )

    asyncio.run(deploy())

    client = triton.InferenceServerClient(
        agent.serving, ssl=True, root_certificates=str(agent_pki.directory / "ca.pem")
    )
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("resnet")
    assert not client.is_model_ready("missing")
    metadata = client.get_model_metadata("resnet")
    assert metadata.versions == ["7"]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        ("x", "FP32", [-1, 8])
    ]

    batch = np.random.default_rng(7).standard_normal((3, 8)).astype(np.float32)
    request = triton.InferInput("x", list(batch.shape), "FP32")
    request.set_data_from_numpy(batch)
    result = client.infer("resnet", [request], outputs=[triton.InferRequestedOutput("y")])

    expected = onnxruntime.InferenceSession(model).run(["y"], {"x": batch})[0]
    np.testing.assert_allclose(result.as_numpy("y"), expected, rtol=1e-6)
    assert result.get_response().model_version == "7"

    with pytest.raises(triton.InferenceServerException, match="not active"):
        client.infer("missing", [request])
    client.close()
