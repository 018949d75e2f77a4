"""Every AgentService call relayed through a gateway answers exactly as a direct call does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from edgewave_agent import testing as agent_testing
from edgewave_api import identities, signing
from edgewave_api.errors import EdgewaveError
from edgewave_gateway import testing
from edgewave_operator.agents.artifacts import Artifact
from edgewave_operator.agents.client import AgentClient
from edgewave_proto.agent.v1 import agent_pb2 as pb
from tests.integration.gateway import helpers
from tests.integration.gateway.conftest import StartAgent, StartGateway

pytestmark = pytest.mark.integration
MODEL = "classifier"
ROLLOUT = "rollout-uid"


async def _outcome(name: str, action: Any) -> tuple[str, str]:
    try:
        result = await action
    except EdgewaveError as error:
        return type(error).__name__, str(error).replace(name, "AGENT")
    return "OK", str(result).replace(name, "AGENT")


async def _scenario(
    client: AgentClient, forger: AgentClient, artifact: Artifact, other: Artifact
) -> list[tuple[str, str]]:
    """`forger` reaches the same agent with the operator's certificate but grants signed by
    another key (what a gateway that could claim the operator called would have)."""
    name = client.name
    outcomes = []

    async def describe() -> str:
        described = await client.describe()
        return json.dumps(
            [described.region, described.zone, sorted(a.digest for a in described.artifacts)]
        )

    async def watch_once() -> str:
        update = await client.status()
        return json.dumps([update.ready, [m.active_version for m in update.models]])

    async def push(item: Artifact) -> str:
        result = await client.push(item)
        return json.dumps([result.size_bytes, result.resumed_from, result.already_present])

    async def activate(version: str, *, forged: bool = False) -> str:
        digest = artifact.digest if version == "v1" else other.digest
        response = await (forger if forged else client).activate(
            model=MODEL, version=version, digest=digest, backend="onnxruntime", rollout=ROLLOUT
        )
        return json.dumps([response.model.active_version, response.previous_version])

    async def rollback() -> str:
        response = await client.rollback(MODEL, rollout=ROLLOUT)
        return json.dumps([response.model.active_version, response.rolled_back_from])

    async def remove(version: str) -> str:
        response = await client.remove(MODEL, version=version, rollout=ROLLOUT)
        return json.dumps([list(response.removed_versions), list(response.deleted_digests)])

    async def stat(digest: str) -> str:
        response = await client.stat(digest)
        return json.dumps([response.complete, response.verified_offset, response.total_size])

    steps: list[Any] = [
        describe(),
        stat("not-a-digest"),
        stat(artifact.digest),
        rollback(),
        push(artifact),
        push(artifact),
        stat(artifact.digest),
        activate("v1", forged=True),
        activate("v1"),
        activate("v1"),
        watch_once(),
        push(other),
        activate("v2"),
        rollback(),
        remove("v1"),
        remove("nope"),
        client.build("{not json", timeout_seconds=5),
        describe(),
    ]
    for step in steps:
        outcomes.append(await _outcome(name, step))
    return outcomes


def test_relayed_calls_answer_as_direct_calls(
    *,
    start_gateway: StartGateway,
    start_agent: StartAgent,
    gateway_pki: testing.GatewayPki,
    via_gateway: Callable[..., AgentClient],
    direct: Callable[..., AgentClient],
    short_tmp: Path,
) -> None:
    gateway = start_gateway()
    direct_agent = start_agent("edge-d")
    start_agent("edge-g", gateway=gateway.address)
    asyncio.run(helpers.wait_sessions(gateway_pki, gateway.address, {"edge-g"}))
    first, first_digest = agent_testing.write_artifact(
        short_tmp, agent_testing.linear_model(scale=1.0)
    )
    second, second_digest = agent_testing.write_artifact(
        short_tmp, agent_testing.linear_model(scale=2.0)
    )

    async def both() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        artifact = Artifact.from_file(first, digest=first_digest)
        other = Artifact.from_file(second, digest=second_digest)
        forged = signing.new_signing_key().private_pem
        async with (
            direct(direct_agent) as plain,
            direct(direct_agent, signing_key_pem=forged) as plain_forger,
            via_gateway(gateway, "edge-g") as relayed,
            via_gateway(gateway, "edge-g", signing_key_pem=forged) as relayed_forger,
        ):
            return (
                await _scenario(plain, plain_forger, artifact, other),
                await _scenario(relayed, relayed_forger, artifact, other),
            )

    plain, relayed = asyncio.run(both())
    assert relayed == plain
    kinds = [kind for kind, _ in plain]
    # The scenario meets successes and refusals of several kinds, so equality means something.
    assert kinds.count("OK") >= 10
    assert {"AgentRefused", "AgentNotAuthorized"} <= set(kinds)


async def _raw_call(
    pki_: testing.GatewayPki,
    address: str,
    method: str,
    request: bytes,
    *,
    metadata: tuple[tuple[str, str], ...],
    cert: tuple[bytes, bytes] | None = None,
) -> tuple[grpc.StatusCode, str]:
    async with helpers.gateway_channel(pki_, address, cert=cert) as channel:
        call = channel.unary_unary(method, None, None)
        try:
            await call(request, metadata=metadata, timeout=20)
        except grpc.aio.AioRpcError as error:
            return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


STAT = "/edgewave.agent.v1.AgentService/Stat"


def test_hostile_relay_calls_are_refused_with_clear_statuses(
    start_gateway: StartGateway, start_agent: StartAgent, gateway_pki: testing.GatewayPki
) -> None:
    gateway = start_gateway(max_message_bytes=2 << 20)
    start_agent("edge-g", gateway=gateway.address)
    asyncio.run(helpers.wait_sessions(gateway_pki, gateway.address, {"edge-g"}))
    stat = pb.StatRequest(digest="0" * 64).SerializeToString()
    route = (("edgewave-agent", "edge-g"),)

    def call(method: str, request: bytes = stat, **kwargs: Any) -> tuple[grpc.StatusCode, str]:
        kwargs.setdefault("metadata", route)
        return asyncio.run(_raw_call(gateway_pki, gateway.address, method, request, **kwargs))

    assert call(STAT) == (grpc.StatusCode.OK, "")
    code, details = call("/edgewave.agent.v1.AgentService/Nope")
    assert (code, "has no method 'Nope'" in details) == (grpc.StatusCode.UNIMPLEMENTED, True)
    code, _ = call("/edgewave.other.v1.Thing/Do")
    assert code == grpc.StatusCode.UNIMPLEMENTED
    code, details = call(STAT, metadata=())
    assert (code, "set metadata edgewave-agent" in details) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        True,
    )
    code, details = call(STAT, metadata=(("edgewave-agent", "edge-absent"),))
    assert code == grpc.StatusCode.UNAVAILABLE
    assert "agent edge-absent has no session" in details
    code, _ = call(STAT, request=b"\0" * (3 << 20))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # A garbage request reaches the agent's own parser and comes back as its status.
    code, _ = call(STAT, request=b"\xff\xff\xff")
    assert code != grpc.StatusCode.OK
    # An agent's certificate may not call agents through the gateway.
    agent = identities.issue_agent(gateway_pki.ca, name="edge-x")
    code, details = call(STAT, cert=(agent.key_pem, agent.cert_pem))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "needs an operator's certificate" in details
    # The session still works after all that.
    assert call(STAT) == (grpc.StatusCode.OK, "")


def test_caller_identity_metadata_is_believed_only_on_the_unix_socket(
    start_gateway: StartGateway, start_agent: StartAgent, gateway_pki: testing.GatewayPki
) -> None:
    gateway = start_gateway()
    agent = start_agent("edge-g", gateway=gateway.address)
    rollback = pb.RollbackRequest(model=MODEL).SerializeToString()
    spoofed = (("edgewave-caller-cert-bin", gateway_pki.operator.cert_pem),)
    method = "/edgewave.agent.v1.AgentService/Rollback"

    async def on_serving_port() -> tuple[grpc.StatusCode, str]:
        credentials = grpc.ssl_channel_credentials(gateway_pki.ca.cert_pem)
        async with grpc.aio.secure_channel(agent.serving, credentials) as channel:
            try:
                await channel.unary_unary(method, None, None)(
                    rollback, metadata=spoofed, timeout=10
                )
            except grpc.aio.AioRpcError as error:
                return error.code(), error.details() or ""
        return grpc.StatusCode.OK, ""

    async def on_socket(metadata: Any) -> tuple[grpc.StatusCode, str]:
        socket = Path(agent.config["data_dir"]) / "run" / "control.sock"
        async with grpc.aio.insecure_channel(f"unix:{socket}") as channel:
            try:
                await channel.unary_unary(method, None, None)(
                    rollback, metadata=metadata, timeout=10
                )
            except grpc.aio.AioRpcError as error:
                return error.code(), error.details() or ""
        return grpc.StatusCode.OK, ""

    code, details = asyncio.run(on_serving_port())
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert "needs a client certificate" in details
    code, _ = asyncio.run(on_socket(()))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    # With the operator's identity on the socket the call passes the role check and reaches
    # the grant gate: the operator's authority is its signed grant, which this call lacks.
    code, details = asyncio.run(on_socket(spoofed))
    assert (code, "carries no grant" in details) == (grpc.StatusCode.PERMISSION_DENIED, True)
    # The same rule as on a TCP port: a relayed gateway or agent certificate may not command.
    for pair in (gateway_pki.gateway, identities.issue_agent(gateway_pki.ca, name="edge-g")):
        code, details = asyncio.run(on_socket((("edgewave-caller-cert-bin", pair.cert_pem),)))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert "Rollback refused" in details


def test_small_calls_and_status_streams_flow_while_a_push_is_paused(
    *,
    start_gateway: StartGateway,
    start_agent: StartAgent,
    gateway_pki: testing.GatewayPki,
    via_gateway: Callable[..., AgentClient],
    short_tmp: Path,
) -> None:
    gateway = start_gateway()
    start_agent("edge-g", gateway=gateway.address)
    asyncio.run(helpers.wait_sessions(gateway_pki, gateway.address, {"edge-g"}))
    path, digest = agent_testing.write_artifact(short_tmp, bytes(range(256)) * (32 << 10))

    async def scenario() -> list[str]:
        seen: list[str] = []
        paused = asyncio.Event()
        resume = asyncio.Event()

        async def pause(offset: int) -> None:
            if offset >= 2 << 20 and not paused.is_set():
                paused.set()
                await resume.wait()

        async with (
            via_gateway(gateway, "edge-g") as pusher,
            via_gateway(gateway, "edge-g") as other,
        ):
            push = asyncio.create_task(
                pusher.push(Artifact.from_file(path, digest=digest), progress=pause)
            )
            await asyncio.wait_for(paused.wait(), 30)
            described = await other.describe()
            seen.append(described.agent_id)
            updates = 0
            async for _ in other.watch_status(interval_seconds=0.2):
                updates += 1
                if updates == 3:
                    break
            seen.append(f"updates={updates}")
            stat = await other.stat(digest)
            seen.append(f"in_progress={stat.in_progress}")
            resume.set()
            result = await push
            seen.append(f"pushed={result.size_bytes}")
        return seen

    assert asyncio.run(scenario()) == [
        "edge-g",
        "updates=3",
        "in_progress=True",
        f"pushed={8 << 20}",
    ]


def test_trailing_metadata_of_a_refused_push_is_relayed_unchanged(
    start_gateway: StartGateway, start_agent: StartAgent, gateway_pki: testing.GatewayPki
) -> None:
    gateway = start_gateway()
    direct_agent = start_agent("edge-d")
    start_agent("edge-g", gateway=gateway.address)
    asyncio.run(helpers.wait_sessions(gateway_pki, gateway.address, {"edge-g"}))
    header = pb.PushChunk(digest="ab" * 32, total_size=1000, offset=500).SerializeToString()

    async def refused(address: str, metadata: tuple[tuple[str, str], ...]) -> tuple[Any, ...]:
        async with helpers.gateway_channel(gateway_pki, address) as channel:
            call = channel.stream_unary("/edgewave.agent.v1.AgentService/Push", None, None)(
                None, metadata=metadata, timeout=20
            )
            await call.write(header)
            try:
                await call
            except grpc.aio.AioRpcError as error:
                pairs: Any = error.trailing_metadata() or ()
                trailing = [(k, v) for k, v in pairs if k.startswith("edgewave")]
                return error.code(), error.details(), trailing
        raise AssertionError("the push was accepted")

    plain = asyncio.run(refused(direct_agent.control, ()))
    relayed = asyncio.run(refused(gateway.address, (("edgewave-agent", "edge-g"),)))
    assert relayed == plain
    assert plain[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert ("edgewave-expected-offset", "0") in plain[2]
