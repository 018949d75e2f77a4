"""Fixtures for the gateway's integration tests: a PKI, gateway processes, gateway-mode agents."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgewave_agent import testing as agent_testing
from edgewave_gateway import testing
from edgewave_operator.agents.client import AgentClient, ClientTls

StartGateway = Callable[..., testing.GatewayProcess]
StartAgent = Callable[..., agent_testing.AgentProcess]


@pytest.fixture(scope="session")
def gateway_pki(tmp_path_factory: pytest.TempPathFactory) -> testing.GatewayPki:
    return testing.GatewayPki.create(tmp_path_factory.mktemp("gwpki"))


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    # Unix socket paths are at most 107 bytes: keep the agents' data dirs short.
    directory = Path(tempfile.mkdtemp(prefix="ew-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


class DialingAgent(agent_testing.AgentProcess):
    """An agent process that may have no port at all (gateway mode, no serving port)."""

    def wait_serving(self, *, deadline: float) -> None:
        if self.serving_port:
            super().wait_serving(deadline=deadline)


@pytest.fixture
def start_gateway(gateway_pki: testing.GatewayPki, short_tmp: Path) -> Iterator[StartGateway]:
    started: list[testing.GatewayProcess] = []

    def start(name: str = "gw-1", **extra: Any) -> testing.GatewayProcess:
        config = testing.gateway_config(pki_=gateway_pki, root=short_tmp, name=name, **extra)
        gateway = testing.GatewayProcess(config=config, workdir=short_tmp / "gateways")
        started.append(gateway)
        return gateway.start()

    yield start
    for gateway in started:
        gateway.kill()


@pytest.fixture
def start_agent(gateway_pki: testing.GatewayPki, short_tmp: Path) -> Iterator[StartAgent]:
    """Start agents; `gateway=ADDRESS` puts them in gateway mode (no control port)."""
    started: list[agent_testing.AgentProcess] = []
    legacy = agent_testing.Pki.create(short_tmp / "legacy-pki")

    def start(
        agent_id: str = "edge-1", *, gateway: str | None = None, **extra: Any
    ) -> agent_testing.AgentProcess:
        data_dir = short_tmp / agent_id
        config = agent_testing.agent_config(pki_=legacy, data_dir=data_dir, agent_id=agent_id)
        # One CA for the gateway, the agents and the operator in these tests.
        shutil.copy(gateway_pki.directory / "ca.pem", legacy.directory / "ca.pem")
        shutil.copy(gateway_pki.directory / "activation.pub", legacy.directory / "activation.pub")
        cert, key = gateway_pki.agent_files(agent_id)
        config["tls"] = {
            "cert_file": str(cert),
            "key_file": str(key),
            "client_ca_file": str(gateway_pki.directory / "ca.pem"),
        }
        config["activation_public_key_file"] = str(gateway_pki.directory / "activation.pub")
        if gateway is not None:
            config.update(
                {
                    k: v
                    for k, v in testing.agent_gateway_settings(
                        pki_=gateway_pki, name=agent_id, address=gateway
                    ).items()
                    if k == "gateway"
                }
            )
        for key_, value in extra.items():
            if isinstance(value, dict) and isinstance(config.get(key_), dict):
                config[key_] = {**config[key_], **value}
            else:
                config[key_] = value
        agent = DialingAgent(config=config, workdir=short_tmp)
        started.append(agent)
        return agent.start()

    yield start
    for agent in started:
        agent.kill()


def operator_tls(pki_: testing.GatewayPki, *, server_name: str | None = "localhost") -> ClientTls:
    return ClientTls(
        ca_pem=pki_.ca.cert_pem,
        cert_pem=pki_.operator.cert_pem,
        key_pem=pki_.operator.key_pem,
        server_name=server_name,
    )


@pytest.fixture
def via_gateway(gateway_pki: testing.GatewayPki) -> Callable[..., AgentClient]:
    def make(gateway: testing.GatewayProcess, agent: str, **kwargs: Any) -> AgentClient:
        kwargs.setdefault("signing_key_pem", gateway_pki.signing_key.private_pem)
        return AgentClient(
            gateway.address,
            tls=operator_tls(gateway_pki),
            via_gateway=agent,
            name=agent,
            **kwargs,
        )

    return make


@pytest.fixture
def direct(gateway_pki: testing.GatewayPki) -> Callable[..., AgentClient]:
    def make(agent: agent_testing.AgentProcess, **kwargs: Any) -> AgentClient:
        kwargs.setdefault("signing_key_pem", gateway_pki.signing_key.private_pem)
        return AgentClient(
            agent.control,
            tls=operator_tls(gateway_pki),
            name=agent.config["agent_id"],
            **kwargs,
        )

    return make
