"""An on-agent Build never reads a file a model names (real agent, real gRPC, real worker).

The agent runs from a directory holding a secret-looking `token` file; each hostile model
(`edgewave_compiler.leaks`) names it by a relative path. Without the check the build worker
inherits the agent's working directory, ONNX Runtime folds the file into the engine, and
the build succeeds. With it the Build is refused, naming the node and attribute.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import onnxruntime
import pytest

from edgewave_agent import testing
from edgewave_operator.agents import errors
from edgewave_operator.agents.artifacts import Artifact
from edgewave_operator.agents.client import AgentClient

pytestmark = pytest.mark.integration

ROUTES = ("constant", "sparse-initializer", "nested", "function")


def test_on_agent_build_refuses_every_route_naming_where(
    start_agent: Callable[..., testing.AgentProcess],
    connect: Callable[..., AgentClient],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = pytest.importorskip("edgewave_compiler.keys", reason="needs the compiler library")
    leaks = pytest.importorskip("edgewave_compiler.leaks", reason="needs the compiler library")
    home = tmp_path / "cwd"
    home.mkdir()
    (home / "token").write_bytes(b"TOPSECRET-TOKEN!-rest-of-the-token")
    monkeypatch.chdir(home)  # the agent process starts here, as an image without WORKDIR at /
    agent = start_agent("edge-hostile")
    models = {}
    for route in ROUTES:
        models[route] = testing.write_artifact(
            tmp_path, leaks.ROUTES[route]("token").SerializeToString()
        )

    async def scenario() -> dict[str, str]:
        refusals = {}
        async with connect(agent) as client:
            for route, (path, digest) in models.items():
                await client.push(Artifact.from_file(path))
                spec = keys.BuildSpec(
                    model_sha256=digest,
                    backend=keys.Backend.ONNXRUNTIME,
                    backend_version=onnxruntime.__version__,
                )
                with pytest.raises(errors.AgentRefused) as caught:
                    await client.build(spec.canonical_json())
                refusals[route] = str(caught.value)
        return refusals

    refusals = asyncio.run(scenario())
    for route, message in refusals.items():
        assert leaks.WHERE[route] in message, (route, message)
        assert "external file ('token')" in message, (route, message)
