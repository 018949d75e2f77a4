"""Fixtures of the network fault tests: namespaces, Toxiproxy, a gateway and agents in them.

These tests need root (to make network namespaces); CI runs as root. Without root they
FAIL with a message saying so, unless a developer opts out with EDGEWAVE_NETNS_OPTOUT=1
(then they are skipped, with that reason). Tests marked `chaos` are the long forms:
`make chaos` runs them (EDGEWAVE_CHAOS=1); otherwise they are deselected, and `make test`
runs the short forms.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgewave_gateway import testing
from tests.netlab import netns, rig
from tests.netlab.toxiproxy import Toxiproxy

CHAOS_ENV = "EDGEWAVE_CHAOS"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(CHAOS_ENV) == "1":
        return
    chaos = [item for item in items if item.get_closest_marker("chaos")]
    if chaos:
        config.hook.pytest_deselected(items=chaos)
        items[:] = [item for item in items if not item.get_closest_marker("chaos")]


@pytest.fixture(scope="session")
def netns_ready() -> None:
    action, why = netns.gate(netns.unavailable_reason(), os.environ)
    if action == "skip":
        pytest.skip(why)
    if action == "fail":
        pytest.fail(why, pytrace=False)
    netns.sweep_stale()


@pytest.fixture
def lab(netns_ready: None) -> Iterator[netns.Lab]:
    made = netns.Lab()
    yield made
    problems = made.close()
    assert not problems, problems


@pytest.fixture(scope="session")
def toxiproxy(netns_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Toxiproxy]:
    server = Toxiproxy(log_path=tmp_path_factory.mktemp("toxiproxy") / "toxiproxy.log").start()
    yield server
    server.stop()


@pytest.fixture
def toxics(toxiproxy: Toxiproxy) -> Iterator[Toxiproxy]:
    """The session's Toxiproxy, with every proxy made by the test deleted afterwards."""
    yield toxiproxy
    toxiproxy.reset()
    for name in toxiproxy.proxy_names():
        toxiproxy.delete_named(name)


@pytest.fixture(scope="session")
def net_pki(tmp_path_factory: pytest.TempPathFactory) -> testing.GatewayPki:
    pki = testing.GatewayPki.create(tmp_path_factory.mktemp("netpki"))
    rig.write_operator_files(pki)
    return pki


@pytest.fixture
def short_root() -> Iterator[Path]:
    # Unix socket paths are at most 107 bytes: keep the agents' data dirs short.
    directory = Path(tempfile.mkdtemp(prefix="ewn-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


StartGateway = Callable[..., testing.GatewayProcess]
StartAgent = Callable[..., rig.NamespacedAgent]


@pytest.fixture
def start_gateway(net_pki: testing.GatewayPki, short_root: Path) -> Iterator[StartGateway]:
    started: list[testing.GatewayProcess] = []

    def start(name: str = "gw-1", *, port: int = 0, **extra: Any) -> testing.GatewayProcess:
        gateway = rig.gateway_process(pki=net_pki, root=short_root, name=name, port=port, **extra)
        started.append(gateway)
        return gateway.start()

    yield start
    for gateway in started:
        gateway.kill()


@pytest.fixture
def start_agent(
    net_pki: testing.GatewayPki, short_root: Path, lab: netns.Lab
) -> Iterator[StartAgent]:
    """Start an agent in a namespace (gateway mode); killed before the namespaces go."""
    started: list[rig.NamespacedAgent] = []

    def start(
        namespace: netns.Namespace, name: str, *, gateway: str, **extra: Any
    ) -> rig.NamespacedAgent:
        agent = rig.agent_process(
            namespace=namespace, pki=net_pki, root=short_root, name=name,
            gateway_address=gateway, **extra,
        )  # fmt: skip
        started.append(agent)
        agent.start()
        return agent

    yield start
    for agent in started:
        agent.kill()
