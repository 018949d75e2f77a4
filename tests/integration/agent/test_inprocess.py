"""Many agents in one process (as the operator's scale benchmark runs them), plaintext lab mode."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from edgewave_agent import settings, testing
from edgewave_agent.server import AgentServer
from edgewave_operator.agents.artifacts import Artifact
from edgewave_operator.agents.client import AgentClient, PushResult, push_to_many

pytestmark = pytest.mark.integration


def test_several_insecure_agents_in_one_process(
    agent_pki: testing.Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, digest = testing.write_artifact(tmp_path, testing.linear_model(scale=1.0))

    def config(index: int) -> settings.AgentConfig:
        return settings.parse(
            {
                "agent_id": f"edge-{index}",
                "region": "eu" if index % 2 else "us",
                "data_dir": str(tmp_path / f"agent-{index}"),
                "insecure": True,
                "listen": {"control": "127.0.0.1:0", "serving": None},
                "activation_public_key_pem": agent_pki.signing_key.public_pem.decode(),
                "gpus": [{"name": "lab Orin", "compute_capability": "8.7"}],
            }
        )

    async def scenario() -> None:
        servers = [AgentServer(config(i)) for i in range(4)]
        for server in servers:
            await server.start()
        try:
            ports = {server.control_port for server in servers}
            assert len(ports) == 4 and 0 not in ports
            artifact = Artifact.from_file(path)
            clients = [
                AgentClient(
                    f"127.0.0.1:{server.control_port}",
                    tls=None,
                    signing_key_pem=agent_pki.signing_key.private_pem,
                    name=server.config.agent_id,
                )
                for server in servers
            ]
            # One mapped file feeds every push.
            pushed = await push_to_many(clients, artifact, concurrency=2)
            assert sorted(pushed) == [f"edge-{i}" for i in range(4)]
            assert all(
                isinstance(r, PushResult) and r.size_bytes == artifact.size for r in pushed.values()
            )
            for server, client in zip(servers, clients, strict=True):
                async with client:
                    described = await client.describe()
                    assert described.agent_id == server.config.agent_id
                    assert [(g.name, g.compute_capability_major) for g in described.gpus] == [
                        ("lab Orin", 8)
                    ]
                    assert "onnxruntime" in {r.name for r in described.runtimes}
                    assert described.disk_free_bytes > 0
                    assert (await client.push(artifact)).already_present
                    await client.activate(
                        rollout="r1", model="m", version="1", digest=digest, backend="onnxruntime"
                    )
                    status = await client.status()
                    assert status.ready and status.models[0].active_version == "1"
            artifact.close()
        finally:
            for server in servers:
                await server.stop(grace=0)

    with caplog.at_level(logging.WARNING, logger="edgewave_agent.server"):
        asyncio.run(scenario())
    assert any("WITHOUT TLS (--insecure)" in r.getMessage() for r in caplog.records)
