"""A push cut mid-stream over a shaped, slow link resumes on both legs without re-sending.

Topology (all real processes): the uploader (the operator's leg) runs in namespace `up`, the
agent in namespace `edge`; the gateway runs in the test's namespace. Both veths are shaped
to 20 Mbit/s in both directions (tbf), and each leg passes a Toxiproxy proxy that adds
40 ms each way (80 ms round trip) and, once per cut, a toxic that closes the connection
after a random number of bytes (`limit_data`) or resets it after a random time
(`reset_peer`, from the second cut of a leg on: the long form); seeded, and the seed is in
every failure message.

Per leg, after each cut: the receiver's verified offset grew; the next attempt starts there
(`resumed_from`) and sends exactly the rest; and the bytes handed to the link but not kept
by the receiver are at most one chunk plus one checkpoint interval (what was not yet
synced). For the agent, the bytes it received over all attempts (its own counter,
edgewave_agent_push_received_bytes_total) exceed the engine by at most the same bound.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets
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
from tests.netlab import netns, rig
from tests.netlab.toxiproxy import Proxy, Toxiproxy

pytestmark = [pytest.mark.integration, pytest.mark.network]
MiB = 1 << 20
CHUNK = MiB
CHECKPOINT = MiB
LINK_MBIT = 20
ONE_WAY_MS = 40
AGENT = "edge-s"
RECEIVED = "edgewave_agent_push_received_bytes_total"


@dataclass(frozen=True)
class Scale:
    engine_mib: int
    cuts: int  # per leg


SCALES = [
    pytest.param(Scale(engine_mib=6, cuts=1), id="short"),
    pytest.param(Scale(engine_mib=32, cuts=3), id="full", marks=pytest.mark.chaos),
]


def _gateway_client(pki: testing.GatewayPki, address: str) -> gateway_client.GatewayClient:
    return gateway_client.GatewayClient(
        address,
        ca_pem=pki.ca.cert_pem,
        cert_pem=pki.operator.cert_pem,
        key_pem=pki.operator.key_pem,
        server_name="localhost",
    )


def _slow(toxics: Toxiproxy, proxy: Proxy) -> None:
    for stream in ("upstream", "downstream"):
        toxics.add_toxic(
            proxy, name=f"latency-{stream}", kind="latency", stream=stream, latency=ONE_WAY_MS
        )


def _cut(
    toxics: Toxiproxy,
    proxy: Proxy,
    rng: random.Random,
    *,
    cut: int,
    remaining: int,
    stream: str = "downstream",
) -> str:
    """Arm a cut at a random point of the next `remaining` bytes: even cuts close the
    connection after a random byte count (limit_data), odd ones reset it (RST) after a
    random time (reset_peer, from 1 s plus 20-50% of the time the rest would take)."""
    if cut % 2 == 0:
        limit = rng.randint(remaining // 5, remaining * 3 // 5)
        toxics.add_toxic(proxy, name="cut", kind="limit_data", stream=stream, bytes=limit)
        return f"limit_data after {limit} bytes"
    expected_ms = remaining * 8 / (LINK_MBIT * 1e6) * 1000
    timeout = int(1000 + rng.uniform(0.2, 0.5) * expected_ms)
    toxics.add_toxic(proxy, name="cut", kind="reset_peer", stream=stream, timeout=timeout)
    return f"reset_peer after {timeout} ms"


async def _settled(client: gateway_client.GatewayClient, digest: str) -> int:
    """The gateway's verified offset once the cut upload has ended (bounded wait)."""
    for _ in range(600):
        stat = await client.stat_engine(digest)
        if not stat.in_progress:
            return int(stat.verified_offset)
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the upload of {digest[:12]} never ended at the gateway")


async def _agent_settled(tls: ClientTls, gateway: str, digest: str) -> int:
    """The agent's verified offset once the cut push has ended, asked through the gateway."""
    async with AgentClient(gateway, tls=tls, via_gateway=AGENT, name=AGENT) as relay:
        for _ in range(600):
            try:
                stat = await relay.stat(digest)
                if not stat.in_progress:
                    return int(stat.verified_offset)
            except grpc.aio.AioRpcError:
                pass  # the session is coming back: ask again
            await asyncio.sleep(0.1)
    raise TimeoutError(f"the push of {digest[:12]} never ended at the agent")


@pytest.mark.parametrize("scale", SCALES)
def test_a_push_cut_mid_stream_resumes_on_both_legs_over_a_shaped_link(
    *,
    scale: Scale,
    lab: netns.Lab,
    toxics: Toxiproxy,
    start_gateway: StartGateway,
    start_agent: StartAgent,
    net_pki: testing.GatewayPki,
    short_root: Path,
) -> None:
    tls = ClientTls(
        ca_pem=net_pki.ca.cert_pem,
        cert_pem=net_pki.operator.cert_pem,
        key_pem=net_pki.operator.key_pem,
        server_name="localhost",
    )
    seed = secrets.randbits(32)
    rng = random.Random(seed)
    where = f"(seed {seed})"
    gateway = start_gateway()
    up, edge = lab.add(), lab.add()
    for namespace in (up, edge):
        namespace.shape(mbit=LINK_MBIT)
    to_gateway = toxics.create(up.name, listen=f"{up.host_address}:0", upstream=gateway.address)
    to_agent = toxics.create(edge.name, listen=f"{edge.host_address}:0", upstream=gateway.address)
    _slow(toxics, to_gateway)
    _slow(toxics, to_agent)
    agent = start_agent(
        edge, AGENT, gateway=to_agent.listen, metrics=True, store={"checkpoint_bytes": CHECKPOINT}
    )
    asyncio.run(helpers.wait_sessions(net_pki, gateway.address, {AGENT}))
    size = scale.engine_mib * MiB
    engine, digest = agent_testing.write_artifact(short_root, rng.randbytes(size))

    # Leg 1: uploader (namespace `up`) -> gateway cache, cut `cuts` times at random points.
    async def gateway_offset() -> int:
        async with _gateway_client(net_pki, gateway.address) as client:
            return await _settled(client, digest)

    verified = 0
    wasted_upload = []
    for cut in range(scale.cuts):
        limit = _cut(toxics, to_gateway, rng, cut=cut, remaining=size - verified, stream="upstream")
        try:
            attempt = rig.upload(
                up, pki_dir=net_pki.directory, gateway_address=to_gateway.listen,
                engine=engine, digest=digest, chunk_bytes=CHUNK,
            )  # fmt: skip
        finally:
            toxics.remove_toxic(to_gateway, "cut")
        assert "error" in attempt, f"cut {cut} ({limit}) did not cut the upload {where}"
        now = asyncio.run(gateway_offset())
        assert verified < now < size, (cut, verified, now, where)
        wasted_upload.append(attempt["uploaded_bytes"] - (now - verified))
        verified = now
    final = rig.upload(
        up, pki_dir=net_pki.directory, gateway_address=to_gateway.listen,
        engine=engine, digest=digest, chunk_bytes=CHUNK,
    )  # fmt: skip
    assert final["response"]["complete"], (final, where)
    assert final["response"]["resumed_from"] == verified, (final, verified, where)
    assert final["uploaded_bytes"] == size - verified, (final, verified, where)
    assert final["response"]["received_bytes"] == size - verified, (final, where)
    assert max(wasted_upload) <= CHUNK + CHECKPOINT, (wasted_upload, where)

    # Leg 2: gateway cache -> agent (namespace `edge`), cut the same way.
    async def deliveries() -> tuple[list[int], int, int]:
        wasted: list[int] = []
        agent_verified = 0
        async with _gateway_client(net_pki, gateway.address) as client:
            for cut in range(scale.cuts):
                before = toxics.proxy_bytes(to_agent).get("sent_downstream", 0)
                _cut(toxics, to_agent, rng, cut=cut, remaining=size - agent_verified)
                try:
                    with pytest.raises(grpc.aio.AioRpcError) as cut_off:
                        await client.deliver(AGENT, digest, chunk_bytes=CHUNK)
                finally:
                    toxics.remove_toxic(to_agent, "cut")
                assert cut_off.value.code() == grpc.StatusCode.UNAVAILABLE, (cut_off, where)
                crossed = toxics.proxy_bytes(to_agent).get("sent_downstream", 0) - before
                await helpers.wait_sessions(net_pki, gateway.address, {AGENT})
                now = await _agent_settled(tls, gateway.address, digest)
                assert agent_verified < now < size, (cut, agent_verified, now, where)
                # Bytes that crossed the shaped link in this attempt and were not kept
                # (framing and the session's heartbeats included, so an overestimate).
                wasted.append(crossed - (now - agent_verified))
                agent_verified = now
            done = await client.deliver(AGENT, digest, chunk_bytes=CHUNK)
        assert done.done and done.resumed_from == agent_verified, (done, where)
        assert done.sent_bytes == size - agent_verified, (done, where)
        return wasted, agent_verified, done.sent_bytes

    wasted_delivery, _, _ = asyncio.run(deliveries())
    assert max(wasted_delivery) <= CHUNK + CHECKPOINT, (wasted_delivery, where)
    received = agent.metrics()[RECEIVED]
    assert size <= received <= size + CHUNK + CHECKPOINT, (received, size, where)
    blob = Path(agent.config["data_dir"]) / "store" / "blobs" / digest
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == digest
    print(
        f"shaped cuts {where}: link {LINK_MBIT} Mbit/s, +{2 * ONE_WAY_MS} ms RTT,"
        f" engine {scale.engine_mib} MiB; not kept per cut: upload {wasted_upload},"
        f" delivery {wasted_delivery}; agent received {int(received) - size} bytes twice"
    )
