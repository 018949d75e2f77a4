"""A real edge agent's telemetry: its /metrics move by exactly what was pushed and served, and
its spans join the operator's rollout trace over real gRPC.

The metrics test runs `edgewave-agent serve` as a subprocess and scrapes it over HTTP, as
Prometheus would; the trace test runs an `AgentServer` in this process so one in-memory
exporter sees both sides.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from edgewave_agent import testing
from edgewave_agent.server import AgentServer
from edgewave_agent.settings import parse
from edgewave_api.telemetry import interceptors, spans, tracing
from edgewave_operator.agents.artifacts import Artifact
from edgewave_operator.agents.client import AgentClient, ClientTls

pytestmark = pytest.mark.integration

UID = "c0ffee00-1234-4567-89ab-cdef01234567"
_AGENT_STEPS = ("receive", "verify", "load", "warm_up")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> testing.Pki:
    return testing.Pki.create(tmp_path_factory.mktemp("pki"))


def _client_tls(pki: testing.Pki) -> ClientTls:
    return ClientTls(
        ca_pem=pki.ca.cert_pem, cert_pem=pki.operator.cert_pem, key_pem=pki.operator.key_pem
    )


def _scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _artifact(directory: Path, data: bytes) -> Artifact:
    path, digest = testing.write_artifact(directory, data)
    return Artifact.from_file(path, digest=digest)


def _metrics_port(agent: testing.AgentProcess) -> int:
    """The bound metrics port, from the agent's ready line."""
    for _ in range(600):
        found = re.search(r"edgewave-agent ready .* metrics=(\d+)", agent.log())
        if found:
            return int(found.group(1))
        time.sleep(0.05)
    raise TimeoutError(f"agent printed no ready line with a metrics port; log:\n{agent.log()}")


@pytest.fixture
def agent(pki: testing.Pki, tmp_path: Path) -> Iterator[testing.AgentProcess]:
    config = testing.agent_config(
        pki_=pki,
        data_dir=tmp_path / "edge-m",
        agent_id="edge-m",
        telemetry={"metrics_listen": "127.0.0.1:0"},
    )
    process = testing.AgentProcess(config=config, workdir=tmp_path).start()
    yield process
    process.kill()


def test_agent_metrics_move_by_what_was_pushed_and_served(
    agent: testing.AgentProcess, pki: testing.Pki, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{_metrics_port(agent)}/metrics"
    before = _scrape(url)
    assert _value(before, "edgewave_agent_info", agent="edge-m", region="eu-central",
                  zone="eu-central-1a") == 1  # fmt: skip

    # An odd size, so that whole chunks cannot hide an off-by-some.
    blob = _artifact(tmp_path, random.Random(9).randbytes(3 * (1 << 20) + 12345))
    model = _artifact(tmp_path, testing.linear_model(scale=2.0))

    async def push_and_activate() -> None:
        async with AgentClient(
            agent.control,
            tls=_client_tls(pki),
            signing_key_pem=pki.signing_key.private_pem,
            chunk_bytes=256 << 10,
        ) as client:
            await client.push(blob)
            await client.push(blob)  # already there: nothing is sent again
            await client.push(model)
            await client.activate(rollout="r1", model="lin", version="1", digest=model.digest,
                                  backend="onnxruntime")  # fmt: skip

    asyncio.run(push_and_activate())
    after = _scrape(url)

    received = "edgewave_agent_push_received_bytes_total"
    assert _value(after, received) - _value(before, received) == blob.size + model.size
    pushes = "edgewave_agent_pushes_total"
    assert _value(after, pushes, result="stored") - _value(before, pushes, result="stored") == 2
    assert _value(after, "edgewave_agent_store_bytes") >= blob.size + model.size
    active = {"model": "lin", "version": "1", "backend": "onnxruntime", "digest": model.digest}
    assert _value(after, "edgewave_agent_active_model_info", **active) == 1
    activations = "edgewave_agent_activations_total"
    assert _value(after, activations, result="activated") == 1


def _one(finished: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    matching = [span for span in finished if span.name == name]
    assert len(matching) == 1, f"{name}: {sorted(span.name for span in finished)}"
    return matching[0]


def test_agent_spans_join_the_rollout_trace(pki: testing.Pki, tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = parse(
        testing.agent_config(
            pki_=pki,
            data_dir=tmp_path / "edge-t",
            agent_id="edge-t",
            insecure=True,
            tls={"cert_file": None, "key_file": None, "client_ca_file": None},
            listen={"control": "127.0.0.1:0", "serving": None},
        )
    )
    model = _artifact(tmp_path, testing.linear_model(scale=3.0))

    async def rollout() -> None:
        server = AgentServer(
            config, interceptors=[interceptors.AioServerInterceptor(agent="edge-t")]
        )
        await server.start()
        try:
            async with AgentClient(
                f"127.0.0.1:{server.control_port}",
                tls=None,
                signing_key_pem=pki.signing_key.private_pem,
                name="edge-t",
            ) as client:
                with (
                    spans.rollout(namespace="prod", name="lin", uid=UID, generation=1),
                    spans.wave(name=1, region="eu-central"),
                ):
                    await client.push(model)
                    await client.activate(
                        rollout="r1",
                        model="lin",
                        version="1",
                        digest=model.digest,
                        backend="onnxruntime",
                    )
        finally:
            await server.stop(grace=0)

    with tracing.use_provider(provider):
        asyncio.run(rollout())

    finished = exporter.get_finished_spans()
    trace_id = int(tracing.rollout_trace_id(uid=UID, generation=1), 16)
    wave = _one(finished, "wave")
    push = _one(finished, "push")
    activate = _one(finished, "activate")
    push_rpc = _one(finished, "edgewave.agent.v1.AgentService/Push")
    activate_rpc = _one(finished, "edgewave.agent.v1.AgentService/Activate")
    for span in (push, activate, push_rpc, activate_rpc):
        assert span.context.trace_id == trace_id
    assert push.parent is not None and push.parent.span_id == wave.context.span_id
    assert push_rpc.parent is not None and push_rpc.parent.span_id == push.context.span_id
    assert activate_rpc.parent is not None
    assert activate_rpc.parent.span_id == activate.context.span_id
    assert (push.attributes or {})[spans.RESUMED_OFFSET] == 0
    steps = {name: [s for s in finished if s.name == name] for name in _AGENT_STEPS}
    assert {name: len(found) for name, found in steps.items()} == {
        "receive": 1,
        "verify": 2,  # the artifact's sha256 (Push), the operator's signature (Activate)
        "load": 1,
        "warm_up": 1,
    }
    parents = {
        name: sorted(span.parent.span_id for span in found if span.parent is not None)
        for name, found in steps.items()
    }
    push_id, activate_id = push_rpc.context.span_id, activate_rpc.context.span_id
    assert parents == {
        "receive": [push_id],
        "verify": sorted([push_id, activate_id]),
        "load": [activate_id],
        "warm_up": [activate_id],
    }
    assert all(span.context.trace_id == trace_id for found in steps.values() for span in found)
