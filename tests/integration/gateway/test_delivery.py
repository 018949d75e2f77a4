"""Engines through a gateway: uploaded once, delivered from its cache, resumable on both legs."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from edgewave_agent import testing as agent_testing
from edgewave_gateway import client as gateway_client
from edgewave_gateway import testing
from edgewave_operator.agents.client import AgentClient
from edgewave_proto.agent.v1 import agent_pb2 as pb
from edgewave_proto.gateway.v1 import gateway_pb2 as gw
from tests.integration.gateway import helpers
from tests.integration.gateway.conftest import StartAgent, StartGateway

pytestmark = pytest.mark.integration
MiB = 1 << 20
SIZE = 24 * MiB


class Cut(Exception):
    """Raised by a progress callback to cut a stream mid-way."""


def _client(
    pki_: testing.GatewayPki, gateway: testing.GatewayProcess
) -> gateway_client.GatewayClient:
    return gateway_client.GatewayClient(
        gateway.address,
        ca_pem=pki_.ca.cert_pem,
        cert_pem=pki_.operator.cert_pem,
        key_pem=pki_.operator.key_pem,
        server_name="localhost",
    )


def _engine(directory: Path, *, size: int = SIZE, seed: int = 7) -> tuple[Path, str]:
    return agent_testing.write_artifact(directory, random.Random(seed).randbytes(size))


def _stored(agent: agent_testing.AgentProcess, digest: str) -> str:
    blob = Path(agent.config["data_dir"]) / "store" / "blobs" / digest
    return hashlib.sha256(blob.read_bytes()).hexdigest()


def test_push_through_the_cache_resumes_on_both_legs_after_a_cut(
    start_gateway: StartGateway,
    start_agent: StartAgent,
    gateway_pki: testing.GatewayPki,
    via_gateway: Callable[..., AgentClient],
    short_tmp: Path,
) -> None:
    gateway = start_gateway()
    agent = start_agent("edge-g", gateway=gateway.address, store={"checkpoint_bytes": MiB})
    asyncio.run(helpers.wait_sessions(gateway_pki, gateway.address, {"edge-g"}))
    path, digest = _engine(short_tmp)

    async def scenario() -> None:
        async with (
            _client(gateway_pki, gateway) as operator,
            via_gateway(gateway, "edge-g") as relay,
        ):
            # Leg 1, operator -> gateway: cut after 10 MiB, then resume.
            async def cut_upload(offset: int) -> None:
                if offset >= 10 * MiB:
                    raise Cut

            with pytest.raises(Cut):
                await operator.push_engine(path, digest, progress=cut_upload)
            for _ in range(200):
                stat = await operator.stat_engine(digest)
                if not stat.in_progress:
                    break
                await asyncio.sleep(0.02)
            assert not stat.complete
            assert 0 < stat.verified_offset <= 10 * MiB
            sent_before = operator.uploaded_bytes
            pushed = await operator.push_engine(path, digest)
            assert pushed.complete
            assert pushed.resumed_from == stat.verified_offset
            assert operator.uploaded_bytes - sent_before == SIZE - stat.verified_offset
            # Uploaded once: a second push sends nothing.
            again = await operator.push_engine(path, digest)
            assert again.already_present
            assert operator.uploaded_bytes - sent_before == SIZE - stat.verified_offset

            # Leg 2, gateway -> agent: cancel the delivery after its first progress report.
            async def cut_delivery(progress: gw.DeliverProgress) -> None:
                raise Cut

            with pytest.raises(Cut):
                await operator.deliver("edge-g", digest, progress=cut_delivery)
            for _ in range(200):
                agent_stat = await relay.stat(digest)
                if not agent_stat.in_progress:
                    break
                await asyncio.sleep(0.02)
            assert not agent_stat.complete
            assert agent_stat.verified_offset > 0
            final = await operator.deliver("edge-g", digest)
            assert final.done
            assert final.resumed_from == agent_stat.verified_offset
            assert final.sent_bytes == SIZE - agent_stat.verified_offset
            assert (await relay.stat(digest)).complete
            # Delivered already: nothing is sent again.
            repeat = await operator.deliver("edge-g", digest)
            assert (repeat.already_present, repeat.sent_bytes) == (True, 0)

    asyncio.run(scenario())
    assert _stored(agent, digest) == digest


def test_a_byte_flipped_in_the_gateway_cache_is_refused_and_refetched(
    start_gateway: StartGateway,
    start_agent: StartAgent,
    gateway_pki: testing.GatewayPki,
    via_gateway: Callable[..., AgentClient],
    short_tmp: Path,
) -> None:
    gateway = start_gateway()
    agent = start_agent("edge-g", gateway=gateway.address)
    asyncio.run(helpers.wait_sessions(gateway_pki, gateway.address, {"edge-g"}))
    path, digest = _engine(short_tmp, size=3 * MiB, seed=9)
    blob = Path(gateway.config["cache"]["directory"]) / "blobs" / digest

    async def scenario() -> None:
        async with (
            _client(gateway_pki, gateway) as operator,
            via_gateway(gateway, "edge-g") as relay,
        ):
            await operator.push_engine(path, digest)
            flipped = bytearray(blob.read_bytes())
            flipped[2 * MiB + 17] ^= 0x20
            blob.write_bytes(bytes(flipped))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await operator.deliver("edge-g", digest)
            assert refused.value.code() == grpc.StatusCode.DATA_LOSS
            assert "was dropped" in (refused.value.details() or "")
            assert not (await operator.stat_engine(digest)).complete
            assert not (await relay.stat(digest)).complete
            # The operator's helper uploads it again and delivers.
            sent_before = operator.uploaded_bytes
            final = await operator.deliver_engine("edge-g", path, digest)
            assert final.done
            assert operator.uploaded_bytes - sent_before == 3 * MiB

    asyncio.run(scenario())
    assert _stored(agent, digest) == digest
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == digest


def test_hostile_cache_and_delivery_requests(
    start_gateway: StartGateway,
    start_agent: StartAgent,
    gateway_pki: testing.GatewayPki,
    short_tmp: Path,
) -> None:
    gateway = start_gateway()
    start_agent("edge-g", gateway=gateway.address)
    asyncio.run(helpers.wait_sessions(gateway_pki, gateway.address, {"edge-g"}))
    path, digest = _engine(short_tmp, size=MiB, seed=3)
    wrong = hashlib.sha256(b"something else").hexdigest()

    async def status(action: object) -> tuple[grpc.StatusCode, str]:
        try:
            await action  # type: ignore[misc]
        except grpc.aio.AioRpcError as error:
            return error.code(), error.details() or ""
        return grpc.StatusCode.OK, ""

    async def scenario() -> None:
        async with _client(gateway_pki, gateway) as operator:
            code, details = await status(operator.deliver("edge-g", "sha256:beef"))
            assert (code, "not a sha256" in details) == (grpc.StatusCode.INVALID_ARGUMENT, True)
            code, details = await status(operator.deliver("edge-g", digest))
            assert (code, "push it first" in details) == (grpc.StatusCode.FAILED_PRECONDITION, True)
            code, details = await status(operator.stat_engine("../etc/passwd"))
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            # Bytes that do not hash to the digest they claim are refused and not kept.
            code, details = await status(operator.push_engine(path, wrong))
            assert code == grpc.StatusCode.DATA_LOSS
            assert not (await operator.stat_engine(wrong)).complete
            await operator.push_engine(path, digest)
            code, details = await status(operator.deliver("edge-absent", digest))
            assert (code, "has no session" in details) == (grpc.StatusCode.UNAVAILABLE, True)
            code, details = await status(operator.deliver("Edge/../x", digest))
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            code, details = await status(operator.deliver("edge-g", digest, chunk_bytes=64 << 20))
            assert (code, "chunk_bytes" in details) == (grpc.StatusCode.INVALID_ARGUMENT, True)
            code, details = await status(operator.set_pins("", [digest]))
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert await operator.set_pins("rollout-a", [digest]) == [digest]
            final = await operator.deliver("edge-g", digest)
            assert final.done

    asyncio.run(scenario())


def test_agents_cannot_use_the_operator_side(
    start_gateway: StartGateway, gateway_pki: testing.GatewayPki
) -> None:
    gateway = start_gateway()
    cert, key = gateway_pki.agent_files("edge-9")

    async def call() -> grpc.StatusCode:
        async with helpers.gateway_channel(
            gateway_pki, gateway.address, cert=(key.read_bytes(), cert.read_bytes())
        ) as channel:
            stat = channel.unary_unary(
                "/edgewave.gateway.v1.GatewayService/StatEngine",
                request_serializer=pb.StatRequest.SerializeToString,
                response_deserializer=pb.StatResponse.FromString,
            )
            try:
                await stat(pb.StatRequest(digest="0" * 64), timeout=10)
            except grpc.aio.AioRpcError as error:
                return error.code()
        return grpc.StatusCode.OK

    assert asyncio.run(call()) == grpc.StatusCode.PERMISSION_DENIED
