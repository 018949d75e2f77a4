"""On-agent builds: the agent builds an engine from a pushed ONNX model and stores it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import onnxruntime
import pytest

from edgewave_agent import testing
from edgewave_compiler import keys
from edgewave_operator.agents import errors
from edgewave_operator.agents.artifacts import Artifact
from edgewave_operator.agents.client import AgentClient

pytestmark = pytest.mark.integration


def test_agent_builds_activates_and_reports_the_engine_digest(
    start_agent: Callable[..., testing.AgentProcess],
    connect: Callable[..., AgentClient],
    tmp_path: Path,
) -> None:
    agent = start_agent("edge-builder")
    path, model_digest = testing.write_artifact(tmp_path, testing.linear_model(scale=2.0))
    spec = keys.BuildSpec(
        model_sha256=model_digest,
        backend=keys.Backend.ONNXRUNTIME,
        backend_version=onnxruntime.__version__,
    )

    async def scenario() -> None:
        async with connect(agent) as client:
            with pytest.raises(errors.AgentRefused, match="push it first"):
                await client.build(spec.canonical_json())
            await client.push(Artifact.from_file(path))
            built = await client.build(spec.canonical_json())
            assert built.key_digest == spec.digest()
            assert built.size_bytes > 0 and built.build_seconds >= 0
            stat = await client.stat(built.engine_digest)
            assert stat.complete and stat.total_size == built.size_bytes
            activated = await client.activate(
                rollout="r1",
                model="m",
                version="built",
                digest=built.engine_digest,
                backend=built.backend,
            )
            assert activated.model.active_version == "built"
            with pytest.raises(errors.AgentRefused, match="not a valid build key"):
                await client.build(json.dumps({"backend": "nope"}))

    asyncio.run(scenario())
