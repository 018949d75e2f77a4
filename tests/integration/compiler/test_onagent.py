"""The on-agent build path, end to end: plan says "agent", the agent builds, the record says where.

ONNX Runtime stands in for TensorRT on this CPU host: the planner is given a central ONNX
Runtime builder of another minor version, so (as for a Jetson or Hopper GPU with TensorRT)
no central builder can serve the agent and the build goes to the agent.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator
from pathlib import Path

import onnxruntime
import pytest

from edgewave_agent import testing
from edgewave_compiler import cache, errors, keys, onagent, planning, samples
from edgewave_operator.agents import describing
from edgewave_operator.agents.artifacts import Artifact
from edgewave_operator.agents.client import AgentClient, ClientTls

pytestmark = pytest.mark.integration


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[testing.AgentProcess, testing.Pki]]:
    pki = testing.Pki.create(tmp_path / "pki")
    config = testing.agent_config(pki_=pki, data_dir=tmp_path / "agent", agent_id="jetson-7")
    process = testing.AgentProcess(config=config, workdir=tmp_path)
    process.start()
    try:
        yield process, pki
    finally:
        process.kill()


def test_agent_builds_and_the_record_says_where(
    agent: tuple[testing.AgentProcess, testing.Pki], tmp_path: Path
) -> None:
    process, pki = agent
    model = tmp_path / "model.onnx"
    model.write_bytes(samples.matmul_relu().SerializeToString())
    artifact = Artifact.from_file(model)
    engines = cache.EngineCache(tmp_path / "cache")
    tls = ClientTls(
        ca_pem=pki.ca.cert_pem, cert_pem=pki.operator.cert_pem, key_pem=pki.operator.key_pem
    )

    async def scenario() -> tuple[keys.BuildKey, cache.EngineRecord, int]:
        async with AgentClient(
            process.control,
            tls=tls,
            name="jetson-7",
            signing_key_pem=pki.signing_key.private_pem,
        ) as client:
            status = describing.from_describe(
                await client.describe(),
                previous=None,
                generation=1,
                now=datetime.datetime.now(datetime.UTC),
            )
            plan = planning.plan_builds(
                targets={"jetson-7": planning.platform_from_agent(status)},
                request=planning.BuildRequest(
                    model_sha256=artifact.digest, backends=(keys.Backend.ONNXRUNTIME,)
                ),
                builders=(
                    planning.CentralBuilder(backend=keys.Backend.ONNXRUNTIME, version="1.1.0"),
                ),
            )
            [build] = plan.on_agents
            assert build.agents == ("jetson-7",)
            assert build.key.backend_version == onnxruntime.__version__
            await client.push(artifact)
            answer = await client.build(build.key.canonical_json(), timeout_seconds=120)
            assert answer.key_digest == build.key.digest()
            stat = await client.stat(answer.engine_digest)
            assert stat.complete and stat.total_size == answer.size_bytes
            record = engines.record_agent_build(
                build.key,
                agent="jetson-7",
                engine_digest=answer.engine_digest,
                size_bytes=answer.size_bytes,
                build_seconds=answer.build_seconds,
                log=answer.log,
                toolchain={answer.backend: answer.backend_version},
            )
            return build.key, record, answer.size_bytes

    key, record, size = asyncio.run(scenario())
    assert record.built_on_agent == "jetson-7"
    assert record.built_where == "agent:jetson-7"
    assert record.engine_path is None
    assert record.size_bytes == size
    assert engines.agent_build(key, agent="jetson-7") == record.model_copy(
        update={"cache_hit": True}
    )
    assert engines.entries() == []  # nothing was built centrally
    # The digest the agent reported is the digest of what this spec builds.
    local = onagent.build_on_agent(
        onnx_path=model, spec=key, workdir=tmp_path / "local", isolated=False
    )
    assert local.digest == record.engine_digest


def test_build_on_agent_in_a_child_process(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(samples.matmul_relu().SerializeToString())
    sha = Artifact.from_file(model).digest
    spec = keys.BuildSpec(
        model_sha256=sha, backend=keys.Backend.ONNXRUNTIME, backend_version=onnxruntime.__version__
    )
    result = onagent.build_on_agent(onnx_path=model, spec=spec, workdir=tmp_path / "work")
    assert result.engine_path.parent == tmp_path / "work"
    assert result.digest == Artifact.from_file(result.engine_path).digest
    assert (result.backend, result.backend_version) == ("ONNXRuntime", onnxruntime.__version__)
    assert result.compute_capability is None
    assert result.key_digest == spec.digest()
    with pytest.raises(errors.DigestMismatch, match="sha256sum"):
        onagent.build_on_agent(
            onnx_path=model,
            spec=spec.model_copy(update={"model_sha256": "0" * 64}),
            workdir=tmp_path,
        )
    tensorrt = spec.model_copy(
        update={"backend": keys.Backend.TENSORRT, "compute_capability": "8.7"}
    )
    try:
        import tensorrt as _  # noqa: F401
    except ImportError:
        with pytest.raises(errors.BackendUnavailable, match="install `tensorrt`"):
            onagent.build_on_agent(
                onnx_path=model, spec=tensorrt, workdir=tmp_path / "trt", isolated=False
            )
