"""Agents in gateway mode: no listening control port, sessions, reconnects, identity checks."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import grpc
import pytest

from edgewave_api import identities, pki
from edgewave_gateway import testing
from edgewave_proto.gateway.v1 import gateway_pb2 as gw
from edgewave_proto.gateway.v1 import gateway_pb2_grpc
from tests.integration.gateway import helpers
from tests.integration.gateway.conftest import StartAgent, StartGateway

pytestmark = pytest.mark.integration


def test_gateway_mode_agent_listens_on_no_tcp_port(
    start_gateway: StartGateway, start_agent: StartAgent, gateway_pki: testing.GatewayPki
) -> None:
    gateway = start_gateway()
    agent = start_agent("edge-1", gateway=gateway.address, listen={"serving": None})
    listing = asyncio.run(helpers.wait_sessions(gateway_pki, gateway.address, {"edge-1"}))
    assert agent.process is not None
    assert helpers.listening_tcp_ports(agent.process.pid) == []
    # The same check finds the gateway's own listening port, so it can fail.
    assert gateway.process is not None
    assert helpers.listening_tcp_ports(gateway.process.pid) == [gateway.port]
    socket = Path(agent.config["data_dir"]) / "run" / "control.sock"
    assert stat.S_IMODE(socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(socket.parent.stat().st_mode) == 0o700
    (session,) = listing.sessions
    assert session.region == "eu-central"
    assert session.connected_since_unix_seconds > 0
    assert session.last_seen_unix_seconds >= session.connected_since_unix_seconds


def test_agent_reconnects_after_gateway_restart(
    start_gateway: StartGateway, start_agent: StartAgent, gateway_pki: testing.GatewayPki
) -> None:
    gateway = start_gateway()
    start_agent("edge-1", gateway=gateway.address)
    first = asyncio.run(helpers.wait_sessions(gateway_pki, gateway.address, {"edge-1"}))
    port = gateway.port
    gateway.kill()
    restarted = start_gateway(listen=f"127.0.0.1:{port}")
    second = asyncio.run(helpers.wait_sessions(gateway_pki, restarted.address, {"edge-1"}))
    assert second.sessions[0].session_id != first.sessions[0].session_id


def test_newest_session_of_a_name_wins(
    start_gateway: StartGateway, start_agent: StartAgent, gateway_pki: testing.GatewayPki
) -> None:
    gateway = start_gateway()
    start_agent("edge-1", gateway=gateway.address)
    first = asyncio.run(helpers.wait_sessions(gateway_pki, gateway.address, {"edge-1"}))

    async def second_session() -> tuple[str, gw.ListSessionsResponse]:
        cert, key = gateway_pki.agent_files("edge-1")
        async with helpers.gateway_channel(
            gateway_pki, gateway.address, cert=(key.read_bytes(), cert.read_bytes())
        ) as channel:
            stub = gateway_pb2_grpc.AgentTunnelStub(channel)
            call = stub.Session(None)
            await call.write(gw.AgentSignal(hello=gw.Hello(agent_id="edge-1")))
            welcome: Any = await call.read()
            listing = await helpers.wait_sessions(gateway_pki, gateway.address, {"edge-1"})
            call.cancel()
            return welcome.welcome.session_id, listing

    session_id, listing = asyncio.run(second_session())
    assert [s.session_id for s in listing.sessions] == [session_id]
    assert session_id != first.sessions[0].session_id
    assert "two live sessions claim agent edge-1" in gateway.log()


async def _session_status(
    pki_: testing.GatewayPki, address: str, *, key: bytes, cert: bytes, hello: str
) -> tuple[grpc.StatusCode, str]:
    async with helpers.gateway_channel(pki_, address, cert=(key, cert)) as channel:
        call = gateway_pb2_grpc.AgentTunnelStub(channel).Session(None)
        try:
            await call.write(gw.AgentSignal(hello=gw.Hello(agent_id=hello)))
            await call.read()
            await call.read()
        except grpc.aio.AioRpcError as error:
            return error.code(), error.details() or ""
        finally:
            call.cancel()
    raise AssertionError("the session was accepted")


def test_session_refused_for_non_agent_certificates(
    start_gateway: StartGateway, gateway_pki: testing.GatewayPki
) -> None:
    gateway = start_gateway()
    operator = gateway_pki.operator
    code, details = asyncio.run(
        _session_status(
            gateway_pki, gateway.address, key=operator.key_pem, cert=operator.cert_pem, hello="x"
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "needs an agent's certificate" in details
    # Signed by the right CA but with no role URI (an Organization names no role).
    plain = pki.issue(
        gateway_pki.ca, common_name="edge-1", organization="edgewave-agents", client=True
    )
    code, details = asyncio.run(
        _session_status(
            gateway_pki, gateway.address, key=plain.key_pem, cert=plain.cert_pem, hello="edge-1"
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "carries 0 SPIFFE URIs" in details
    # An agent's URI in another trust domain.
    foreign = pki.issue(
        gateway_pki.ca,
        common_name="edge-1",
        uris=(identities.agent("edge-1", trust_domain="elsewhere"),),
        client=True,
    )
    code, details = asyncio.run(
        _session_status(
            gateway_pki, gateway.address, key=foreign.key_pem, cert=foreign.cert_pem, hello="edge-1"
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "is not in the trust domain 'edgewave'" in details
    # An agent's certificate claiming another agent's name in Hello.
    agent = identities.issue_agent(gateway_pki.ca, name="edge-2")
    code, details = asyncio.run(
        _session_status(
            gateway_pki, gateway.address, key=agent.key_pem, cert=agent.cert_pem, hello="edge-1"
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "certificate is agent 'edge-2'" in details


def test_certificate_from_another_ca_cannot_connect(
    start_gateway: StartGateway, gateway_pki: testing.GatewayPki
) -> None:
    gateway = start_gateway()
    other = identities.issue_agent(pki.new_ca("someone-else"), name="edge-1")
    code, _ = asyncio.run(
        _session_status(
            gateway_pki, gateway.address, key=other.key_pem, cert=other.cert_pem, hello="edge-1"
        )
    )
    assert code == grpc.StatusCode.UNAVAILABLE


def test_agent_session_resumes_after_the_agent_restarts(
    start_gateway: StartGateway, start_agent: StartAgent, gateway_pki: testing.GatewayPki
) -> None:
    gateway = start_gateway()
    agent = start_agent("edge-1", gateway=gateway.address)
    first = asyncio.run(helpers.wait_sessions(gateway_pki, gateway.address, {"edge-1"}))
    agent.kill()
    agent.start()
    for _ in range(200):
        listing = asyncio.run(helpers.wait_sessions(gateway_pki, gateway.address, {"edge-1"}))
        if listing.sessions[0].session_id != first.sessions[0].session_id:
            break
    assert listing.sessions[0].session_id != first.sessions[0].session_id
    assert len(listing.sessions) == 1


def test_calls_attach_only_to_their_own_agents_session(
    start_gateway: StartGateway, start_agent: StartAgent, gateway_pki: testing.GatewayPki
) -> None:
    gateway = start_gateway()
    start_agent("edge-1", gateway=gateway.address)
    listing = asyncio.run(helpers.wait_sessions(gateway_pki, gateway.address, {"edge-1"}))
    session_id = listing.sessions[0].session_id

    async def attach(name: str, call_id: int) -> tuple[grpc.StatusCode, str]:
        cert, key = gateway_pki.agent_files(name)
        async with helpers.gateway_channel(
            gateway_pki, gateway.address, cert=(key.read_bytes(), cert.read_bytes())
        ) as channel:
            call = gateway_pb2_grpc.AgentTunnelStub(channel).Call(None)
            try:
                await call.write(
                    gw.CallUp(attach=gw.Attach(session_id=session_id, call_id=call_id))
                )
                await call.read()
            except grpc.aio.AioRpcError as error:
                return error.code(), error.details() or ""
            finally:
                call.cancel()
        return grpc.StatusCode.OK, ""

    # Another agent cannot attach to edge-1's session (and so never sees its calls).
    code, details = asyncio.run(attach("edge-2", 1))
    assert (code, "no session" in details) == (grpc.StatusCode.NOT_FOUND, True)
    # edge-1's own certificate, but a call nobody asked for.
    code, details = asyncio.run(attach("edge-1", 999))
    assert (code, "no call 999" in details) == (grpc.StatusCode.NOT_FOUND, True)


def test_watch_sessions_sees_agents_come_and_go(
    start_gateway: StartGateway, start_agent: StartAgent, gateway_pki: testing.GatewayPki
) -> None:
    gateway = start_gateway()

    async def watch() -> list[list[str]]:
        seen: list[list[str]] = []
        async with helpers.gateway_channel(gateway_pki, gateway.address) as channel:
            call = gateway_pb2_grpc.GatewayServiceStub(channel).WatchSessions(
                gw.ListSessionsRequest()
            )
            agent = None
            async for listing in call:
                names = sorted(s.agent for s in listing.sessions)
                if not seen or seen[-1] != names:
                    seen.append(names)
                if names == [] and agent is None:
                    agent = await asyncio.to_thread(start_agent, "edge-1", gateway=gateway.address)
                elif names == ["edge-1"] and agent is not None:
                    await asyncio.to_thread(agent.kill)
                elif names == [] and agent is not None and len(seen) >= 3:
                    break
            call.cancel()
        return seen

    assert asyncio.run(asyncio.wait_for(watch(), 120)) == [[], ["edge-1"], []]
