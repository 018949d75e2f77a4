"""The gateway is SIGKILLed mid-relay: the agent reconnects, the delivery completes from what
it kept, the gateway's cache still holds the engine (nothing is uploaded again), and what
the agent activates is the engine the operator signed.

The gateway runs as `edgewave gateway run` in the test's namespace; the agent in its own
namespace behind a 20 Mbit/s veth and a Toxiproxy proxy (+80 ms round trip). The engine is
a real ONNX model (several MiB of weights), so activation loads and probes it.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from edgewave_agent import testing as agent_testing
from edgewave_gateway import client as gateway_client
from edgewave_gateway import testing
from edgewave_operator.agents.client import AgentClient, ClientTls
from tests.integration.gateway import helpers
from tests.integration.network.conftest import StartAgent, StartGateway
from tests.netlab import netns
from tests.netlab.toxiproxy import Toxiproxy

pytestmark = [pytest.mark.integration, pytest.mark.network]
AGENT = "edge-k"
MODEL = "detector"
RECEIVED = "edgewave_agent_push_received_bytes_total"
MiB = 1 << 20


@dataclass(frozen=True)
class Scale:
    weights: int  # float32 weights (and as many biases): the model is ~8 bytes each


SCALES = [
    pytest.param(Scale(weights=1_500_000), id="short"),
    pytest.param(Scale(weights=6_000_000), id="full", marks=pytest.mark.chaos),
]


@pytest.mark.parametrize("scale", SCALES)
def test_a_gateway_killed_mid_relay_resumes_without_a_second_upload(
    *,
    scale: Scale,
    lab: netns.Lab,
    toxics: Toxiproxy,
    start_gateway: StartGateway,
    start_agent: StartAgent,
    net_pki: testing.GatewayPki,
    short_root: Path,
) -> None:
    gateway = start_gateway()
    port = gateway.port
    edge = lab.add()
    edge.shape(mbit=20)
    proxy = toxics.create(edge.name, listen=f"{edge.host_address}:0", upstream=gateway.address)
    for stream in ("upstream", "downstream"):
        toxics.add_toxic(proxy, name=f"latency-{stream}", kind="latency", stream=stream, latency=40)
    agent = start_agent(edge, AGENT, gateway=proxy.listen, metrics=True)
    asyncio.run(helpers.wait_sessions(net_pki, gateway.address, {AGENT}))
    engine, digest = agent_testing.write_artifact(
        short_root, agent_testing.linear_model(scale=1.0, size=scale.weights)
    )
    size = engine.stat().st_size
    tls = ClientTls(
        ca_pem=net_pki.ca.cert_pem,
        cert_pem=net_pki.operator.cert_pem,
        key_pem=net_pki.operator.key_pem,
        server_name="localhost",
    )

    def operator() -> gateway_client.GatewayClient:
        return gateway_client.GatewayClient(
            gateway.address, ca_pem=net_pki.ca.cert_pem, cert_pem=net_pki.operator.cert_pem,
            key_pem=net_pki.operator.key_pem,
            server_name="localhost",
        )  # fmt: skip

    async def upload_then_kill_mid_delivery() -> None:
        async with operator() as client:
            assert (await client.push_engine(engine, digest)).complete
            delivery = asyncio.ensure_future(client.deliver(AGENT, digest))
            for _ in range(1200):
                received = await asyncio.to_thread(agent.metrics)
                if received.get(RECEIVED, 0) >= size // 4 or delivery.done():
                    break
                await asyncio.sleep(0.05)
            assert not delivery.done(), "the delivery ended before the gateway was killed"
            await asyncio.to_thread(gateway.kill)
            with pytest.raises(grpc.aio.AioRpcError):
                await delivery

    asyncio.run(upload_then_kill_mid_delivery())
    restarted = start_gateway(port=port)
    assert restarted.port == port
    asyncio.run(helpers.wait_sessions(net_pki, restarted.address, {AGENT}))

    async def resume_and_activate() -> None:
        async with (
            operator() as client,
            AgentClient(
                restarted.address, tls=tls, via_gateway=AGENT, name=AGENT,
                signing_key_pem=net_pki.signing_key.private_pem,
            ) as relay,
        ):  # fmt: skip
            cached = await client.stat_engine(digest)
            assert cached.complete, f"the gateway lost the engine it had verified: {cached}"
            again = await client.push_engine(engine, digest)
            assert again.already_present and client.uploaded_bytes == 0
            kept = await relay.stat(digest)
            for _ in range(600):
                if not kept.in_progress:
                    break
                await asyncio.sleep(0.05)
                kept = await relay.stat(digest)
            assert not kept.complete and kept.verified_offset > 0, kept
            done = await client.deliver(AGENT, digest)
            assert done.done and done.resumed_from == kept.verified_offset, done
            assert done.sent_bytes == size - kept.verified_offset, done
            activated = await relay.activate(
                model=MODEL, version="v1", digest=digest, backend="onnxruntime", rollout="r1"
            )
            assert activated.model.active_version == "v1"
            described = await relay.describe()
            assert digest in {a.digest for a in described.artifacts}

    asyncio.run(resume_and_activate())
    blob = Path(agent.config["data_dir"]) / "store" / "blobs" / digest
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == digest
    assert agent.metrics()[RECEIVED] <= size + 2 * MiB
