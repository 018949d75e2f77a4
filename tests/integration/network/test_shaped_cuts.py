"""A push cut mid-stream over a shaped, slow link resumes on both legs without re-sending.

Topology (all real processes): the uploader (the operator's leg) runs in namespace `up`, the
agent in namespace `edge`; the gateway runs in the test's namespace. Both veths are shaped
to 20 Mbit/s in both directions (tbf), and each leg passes a Toxiproxy proxy that adds
40 ms each way (80 ms round trip). Cuts come at random points of what is left (seeded; the
seed is in every failure message), alternating per leg: the connection closed after that
many bytes (`limit_data`, a FIN), then reset once the receiver has that much (`reset_peer`
with no delay, an RST). The short form cuts each leg twice (6 MiB), the long form four
times (32 MiB).

Per leg, after each cut: the receiver's verified offset grew; the next attempt starts there
(`resumed_from`) and sends exactly the rest; and the bytes sent but not kept by the receiver
are at most one chunk plus one checkpoint interval (what was not yet synced). Upload: the
data bytes the uploader handed to gRPC in the attempt, minus what the gateway kept. Delivery:
the bytes that crossed the agent's veth in the attempt (its counter, read once the agent has
settled), in data bytes by the wire/data ratio of the final, uncut attempt on the same link,
minus what the agent kept. The agent's own counter (edgewave_agent_push_received_bytes_total)
shows it received at most the same bound twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    pytest.param(Scale(engine_mib=6, cuts=2), id="short"),
    pytest.param(Scale(engine_mib=32, cuts=4), id="full", marks=pytest.mark.chaos),
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


def _plan(rng: random.Random, *, cut: int, verified: int, size: int) -> tuple[str, int]:
    """Where and how to cut: at a random offset in the middle of what is left; even cuts
    close the connection after that many bytes (limit_data: FIN), odd ones reset it once the
    receiver has that many (reset_peer: RST)."""
    remaining = size - verified
    at = verified + rng.randint(remaining // 5, remaining * 3 // 5)
    return ("limit_data" if cut % 2 == 0 else "reset_peer"), at


async def _cut_during(
    attempt: asyncio.Future[Any],
    *,
    toxics: Toxiproxy,
    proxy: Proxy,
    stream: str,
    kind: str,
    at: int,
    verified: int,
    received: Callable[[], Awaitable[int]],
) -> None:
    """Arm the cut for the running `attempt` (bounded: it ends when the attempt does)."""
    if kind == "limit_data":
        await asyncio.to_thread(
            toxics.add_toxic, proxy, name="cut", kind=kind, stream=stream, bytes=at - verified
        )
        return
    while not attempt.done():
        if await received() >= at:
            await asyncio.to_thread(
                toxics.add_toxic, proxy, name="cut", kind=kind, stream=stream, timeout=0
            )
            return
        await asyncio.sleep(0.05)


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
    upload_args = {
        "pki_dir": net_pki.directory, "gateway_address": to_gateway.listen, "engine": engine,
        "digest": digest, "chunk_bytes": CHUNK,
    }  # fmt: skip

    async def upload_once() -> dict[str, object]:
        process = await asyncio.create_subprocess_exec(
            *rig.upload_argv(up, **upload_args), cwd=rig.REPO,  # type: ignore[arg-type]
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), 300)
        return rig.upload_outcome(process.returncode, stdout.decode(), stderr.decode())

    async def uploads() -> tuple[list[int], int]:
        wasted: list[int] = []
        verified = 0
        async with _gateway_client(net_pki, gateway.address) as client:

            async def received() -> int:
                return int((await client.stat_engine(digest)).received_offset)

            for cut in range(scale.cuts):
                kind, at = _plan(rng, cut=cut, verified=verified, size=size)
                attempt = asyncio.ensure_future(upload_once())
                try:
                    await _cut_during(
                        attempt, toxics=toxics, proxy=to_gateway, stream="upstream",
                        kind=kind, at=at, verified=verified, received=received,
                    )  # fmt: skip
                    outcome = await attempt
                finally:
                    await asyncio.to_thread(toxics.remove_toxic, to_gateway, "cut")
                assert "error" in outcome, f"cut {cut} ({kind} at {at}) missed {where}: {outcome}"
                now = await _settled(client, digest)
                assert verified < now < size, (cut, kind, verified, now, where)
                wasted.append(int(outcome["uploaded_bytes"]) - (now - verified))  # type: ignore[call-overload]
                verified = now
        return wasted, verified

    wasted_upload, verified = asyncio.run(uploads())
    final = rig.upload(up, **upload_args)  # type: ignore[arg-type]
    assert final["response"]["complete"], (final, where)
    assert final["response"]["resumed_from"] == verified, (final, verified, where)
    assert final["uploaded_bytes"] == size - verified, (final, verified, where)
    assert final["response"]["received_bytes"] == size - verified, (final, where)
    assert max(wasted_upload) <= CHUNK + CHECKPOINT, (wasted_upload, where)

    # Leg 2: gateway cache -> agent (namespace `edge`), cut the same way. What crosses the
    # link is read from the veth's counter (bytes sent into `edge`, headers included); the
    # final, uncut attempt calibrates wire bytes per data byte on this link, in this run.
    def toward_agent() -> int:
        return edge.link_bytes()[0]

    async def deliveries() -> tuple[list[tuple[int, int]], float]:
        attempts: list[tuple[int, int]] = []  # (wire bytes, data bytes kept) per cut
        agent_verified = 0
        async with _gateway_client(net_pki, gateway.address) as client:
            for cut in range(scale.cuts):
                before = toward_agent()
                kind, at = _plan(rng, cut=cut, verified=agent_verified, size=size)

                async def received(start: int = before, base: int = agent_verified) -> int:
                    return base + int((toward_agent() - start) / 1.1)  # under, with headers

                attempt = asyncio.ensure_future(client.deliver(AGENT, digest, chunk_bytes=CHUNK))
                try:
                    await _cut_during(
                        attempt, toxics=toxics, proxy=to_agent, stream="downstream",
                        kind=kind, at=at, verified=agent_verified, received=received,
                    )  # fmt: skip
                    with pytest.raises(grpc.aio.AioRpcError) as cut_off:
                        await attempt
                finally:
                    await asyncio.to_thread(toxics.remove_toxic, to_agent, "cut")
                assert cut_off.value.code() == grpc.StatusCode.UNAVAILABLE, (cut_off, kind, where)
                await helpers.wait_sessions(net_pki, gateway.address, {AGENT})
                now = await _agent_settled(tls, gateway.address, digest)
                crossed = toward_agent() - before  # read once all in flight has landed
                assert agent_verified < now < size, (cut, kind, agent_verified, now, where)
                attempts.append((crossed, now - agent_verified))
                agent_verified = now
            before = toward_agent()
            done = await client.deliver(AGENT, digest, chunk_bytes=CHUNK)
            wire_per_byte = (toward_agent() - before) / max(done.sent_bytes, 1)
        assert done.done and done.resumed_from == agent_verified, (done, where)
        assert done.sent_bytes == size - agent_verified, (done, where)
        return attempts, wire_per_byte

    attempts, wire_per_byte = asyncio.run(deliveries())
    # Data bytes that crossed the link in a cut attempt and were not kept (an overestimate:
    # the session's heartbeats and the Stat calls are counted as data).
    wasted_delivery = [int(wire / wire_per_byte) - kept for wire, kept in attempts]
    assert max(wasted_delivery) <= CHUNK + CHECKPOINT, (wasted_delivery, wire_per_byte, where)
    received = agent.metrics()[RECEIVED]
    assert size <= received <= size + CHUNK + CHECKPOINT, (received, size, where)
    blob = Path(agent.config["data_dir"]) / "store" / "blobs" / digest
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == digest
    print(
        f"shaped cuts {where}: link {LINK_MBIT} Mbit/s, +{2 * ONE_WAY_MS} ms RTT,"
        f" engine {scale.engine_mib} MiB; not kept per cut: upload {wasted_upload},"
        f" delivery {wasted_delivery} (wire/data {wire_per_byte:.3f}); agent received"
        f" {int(received) - size} bytes twice"
    )
