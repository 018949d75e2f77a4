"""Where an agent's session is, as the operator learns it from its gateways' listings."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from edgewave_operator.agents import client as agent_client
from edgewave_operator.agents import gatewayed

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
TLS = agent_client.ClientTls(ca_pem=b"ca", cert_pem=b"cert", key_pem=b"key")


def session(gateway: str, *, seconds: int) -> gatewayed.Session:
    return gatewayed.Session(
        gateway=gateway, since=T0 + datetime.timedelta(seconds=seconds), session_id=f"s{seconds}"
    )


async def _gateways(changed: list[str]) -> gatewayed.Gateways:
    gateways = gatewayed.Gateways(tls=TLS, on_change=changed.append)
    gateways.add("gw-a", "127.0.0.1:1")
    gateways.add("gw-b", "127.0.0.1:2")
    return gateways


def test_an_agent_is_where_its_newest_session_is_and_changes_are_told_once() -> None:
    changed: list[str] = []

    async def scenario() -> None:
        gateways = await _gateways(changed)
        assert gateways.session_of("edge-1") is None
        gateways._replace("gw-a", {"edge-1": session("gw-a", seconds=1)})
        assert changed == ["edge-1"]
        assert gateways.session_of("edge-1") == session("gw-a", seconds=1)
        # The agent moves: a newer session on gw-b wins while gw-a still lists the old one.
        gateways._replace("gw-b", {"edge-1": session("gw-b", seconds=5)})
        assert gateways.session_of("edge-1") == session("gw-b", seconds=5)
        # gw-a drops its stale session: where the agent is does not change, nobody is told.
        gateways._replace("gw-a", {})
        assert changed == ["edge-1", "edge-1"]
        # gw-b cannot be watched any more: the agent is nowhere.
        gateways._replace("gw-b", {})
        assert gateways.session_of("edge-1") is None
        assert changed == ["edge-1", "edge-1", "edge-1"]

    asyncio.run(scenario())


def test_a_gateway_name_listed_twice_is_refused() -> None:
    async def scenario() -> None:
        gateways = await _gateways([])
        with pytest.raises(ValueError, match="gw-a"):
            gateways.add("gw-a", "127.0.0.1:3")

    asyncio.run(scenario())
