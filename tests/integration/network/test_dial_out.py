"""Agents in their own network namespaces dial the gateway; nothing can dial them.

Each agent runs in a namespace of its own (veth to the test's namespace) and reaches the
gateway, which runs in the test's namespace, through a proxy on its veth. From the kernel's
own socket tables inside each namespace: no TCP socket listens there, and the agent's one
connection goes out to the gateway. From the test's namespace, a connection to the agent's
address on the control port its config names is refused, while a listener started in the
same namespace on the next port is reachable (so the refusal is the agent's, not routing's).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest

from edgewave_gateway import testing
from edgewave_operator.agents.client import AgentClient, ClientTls
from tests.integration.gateway import helpers
from tests.integration.network.conftest import StartAgent, StartGateway
from tests.netlab import netns, rig
from tests.netlab.toxiproxy import Toxiproxy

pytestmark = [pytest.mark.integration, pytest.mark.network]
AGENTS = ("edge-a", "edge-b")


def _connects(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=5):
            return True
    except OSError:
        return False


def _listen_once(namespace: netns.Namespace, port: int) -> subprocess.Popen[bytes]:
    """A plain TCP listener inside `namespace` that accepts one connection, then exits."""
    script = (
        "import socket,sys\n"
        f"s=socket.create_server(({namespace.address!r},{port}))\n"
        "print('ready',flush=True)\n"
        "s.settimeout(30); c,_=s.accept(); c.close()\n"
    )
    process = subprocess.Popen(namespace.argv(sys.executable, "-c", script), stdout=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == b"ready"
    return process


def test_agents_dial_out_have_no_listening_socket_and_cannot_be_dialled(
    lab: netns.Lab,
    toxics: Toxiproxy,
    start_gateway: StartGateway,
    start_agent: StartAgent,
    net_pki: testing.GatewayPki,
) -> None:
    gateway = start_gateway()
    agents: dict[str, rig.NamespacedAgent] = {}
    proxies = {}
    for name in AGENTS:
        namespace = lab.add()
        proxies[name] = toxics.create(
            namespace.name, listen=f"{namespace.host_address}:0", upstream=gateway.address
        )
        agents[name] = start_agent(namespace, name, gateway=proxies[name].listen)
    asyncio.run(helpers.wait_sessions(net_pki, gateway.address, set(AGENTS)))

    for name, agent in agents.items():
        namespace = agent.namespace
        sockets = namespace.tcp_sockets()
        assert [s for s in sockets if s.state == netns.LISTEN] == [], sockets
        outgoing = {
            (s.remote_address, s.remote_port) for s in sockets if s.state == netns.ESTABLISHED
        }
        assert (namespace.host_address, proxies[name].port) in outgoing, sockets
        assert not _connects(namespace.address, rig.WOULD_BE_CONTROL_PORT)
        control = rig.WOULD_BE_CONTROL_PORT + 1
        listener = _listen_once(namespace, control)
        try:
            assert _connects(namespace.address, control)
        finally:
            listener.wait(timeout=30)
            assert listener.stdout is not None
            listener.stdout.close()

    async def describe_all() -> dict[str, str]:
        tls = ClientTls(
            ca_pem=net_pki.ca.cert_pem,
            cert_pem=net_pki.operator.cert_pem,
            key_pem=net_pki.operator.key_pem,
            server_name="localhost",
        )
        found = {}
        for name in AGENTS:
            async with AgentClient(gateway.address, tls=tls, via_gateway=name, name=name) as c:
                found[name] = (await c.describe()).agent_id
        return found

    # Reached only through the gateway, each answers as itself.
    assert asyncio.run(describe_all()) == {name: name for name in AGENTS}
