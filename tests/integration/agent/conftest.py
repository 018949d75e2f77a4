"""Fixtures for the agent's integration tests: a test PKI and real agent processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgewave_agent import testing
from edgewave_operator.agents.client import AgentClient, ClientTls

StartAgent = Callable[..., testing.AgentProcess]


@pytest.fixture(scope="session")
def agent_pki(tmp_path_factory: pytest.TempPathFactory) -> testing.Pki:
    return testing.Pki.create(tmp_path_factory.mktemp("pki"))


def _starter(pki: testing.Pki, *, root: Path, started: list[testing.AgentProcess]) -> StartAgent:
    def start(agent_id: str = "edge-1", **extra: Any) -> testing.AgentProcess:
        data_dir = root / agent_id
        config = testing.agent_config(pki_=pki, data_dir=data_dir, agent_id=agent_id, **extra)
        agent = testing.AgentProcess(config=config, workdir=root)
        started.append(agent)
        return agent.start()

    return start


@pytest.fixture
def start_agent(agent_pki: testing.Pki, tmp_path: Path) -> Iterator[StartAgent]:
    """Start `edgewave-agent serve` subprocesses; all are stopped after the test."""
    started: list[testing.AgentProcess] = []
    yield _starter(agent_pki, root=tmp_path, started=started)
    for agent in started:
        agent.kill()


@pytest.fixture(scope="module")
def module_agents(
    agent_pki: testing.Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartAgent]:
    started: list[testing.AgentProcess] = []
    yield _starter(agent_pki, root=tmp_path_factory.mktemp("agents"), started=started)
    for agent in started:
        agent.kill()


def client_tls(pki: testing.Pki, *, with_cert: bool = True) -> ClientTls:
    return ClientTls(
        ca_pem=pki.ca.cert_pem,
        cert_pem=pki.operator.cert_pem if with_cert else None,
        key_pem=pki.operator.key_pem if with_cert else None,
    )


@pytest.fixture
def connect(agent_pki: testing.Pki) -> Callable[..., AgentClient]:
    """An operator-side client to an agent's control port (mTLS) or serving port (TLS)."""

    def make(agent: testing.AgentProcess, *, with_cert: bool = True, **kwargs: Any) -> AgentClient:
        return AgentClient(
            agent.control if with_cert else agent.serving,
            tls=client_tls(agent_pki, with_cert=with_cert),
            signing_key_pem=agent_pki.signing_key.private_pem,
            **kwargs,
        )

    return make
