"""Rollouts through the operator's embedded gateway, with every agent in its own namespace.

The operator (a real `edgewave_operator.main` on a real API server) runs in the test's
(root) namespace; its embedded gateway listens on 0.0.0.0 on a port it picks (port 0, read
back from its port file): the operator dials its own gateway on 127.0.0.1, so it cannot be
bound to a veth address alone. Each agent is an `edgewave-agent serve --gateway` process in
a network namespace of its own and dials the test's end of its own veth, or, for the agent
the second test cuts off, a Toxiproxy proxy there (upstream: the gateway on loopback).

1. A two-wave, two-region rollout reaches Ready; the kernel's socket tables inside each
   namespace show no listening TCP socket, and a connect from the operator's namespace to
   the agent's address on the control port its config names is refused (a RST: the address
   is reachable, nothing listens).
2. An agent is cut off (proxy disabled, veth down) before its wave: the wave counts it
   offline, then failed per `maxFailed` after `unreachableTimeoutSeconds` with the offline
   reason, and the rollout succeeds. Its link comes back: it reconnects and converges to the
   version with no wave started again and exactly one push of the engine (its own metrics),
   which entered the gateway's cache once.

The operator-side fixtures come from `tests/integration/operator/conftest.py`.
"""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgewave_agent import testing as agent_testing
from edgewave_api import identities
from edgewave_operator.devcluster import clusters
from tests.integration.operator.conftest import (  # noqa: F401  (fixtures used here)
    Operators,
    Watcher,
    crds,
    engine_cache,
    model_files,
    operators,
    pki,
    rollout_manifest,
    wait_until,
    watch,
)
from tests.netlab import netns, rig
from tests.netlab.toxiproxy import Proxy, Toxiproxy

pytestmark = [pytest.mark.integration, pytest.mark.network, pytest.mark.slow]

RUN_LABEL = "edgewave.test/run"
AGENTS = (("ew-0", "eu-west"), ("ew-1", "eu-west"), ("ue-0", "us-east"), ("ue-1", "us-east"))
OFFLINE = "ue-1"
TIMEOUT_SECONDS = 3
STORED = 'edgewave_agent_pushes_total{result="stored"}'


def _jurisdiction(region: str) -> str:
    return "EU" if region.startswith("eu") else "US"


def _waves(*, max_failed: int | None = None) -> list[dict[str, Any]]:
    us: dict[str, Any] = {"name": "us", "regions": ["us-east"], "maxUnavailable": 2}
    if max_failed is not None:
        us["maxFailed"] = max_failed
    return [{"name": "eu", "regions": ["eu-west"], "maxUnavailable": 1}, us]


class Edge:
    """The test's namespaces, the operator with its embedded gateway, and the agents."""

    def __init__(
        self,
        *,
        kube: clusters.DevCluster,
        namespace: str,
        lab: netns.Lab,
        processes: Operators,
        agent_pki: agent_testing.Pki,
        root: Path,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.lab = lab
        self.operators = processes
        self.pki = agent_pki
        self.root = root
        # EdgeAgents are cluster-scoped and named as their agents (certificate CN).
        self.run_id = f"g{secrets.token_hex(3)}"
        self.places = {short: lab.add() for short, _ in AGENTS}
        self.agents: dict[str, rig.NamespacedAgent] = {}

    def name(self, short: str) -> str:
        return f"{self.run_id}-{short}"

    def start_operator(self) -> int:
        """The operator; its embedded gateway listens on every address of the test's
        namespace (the operator itself dials it on 127.0.0.1), on a port it picks."""
        port_file = self.root / "gateway-port.json"
        self.operators.start(gateway_listen="0.0.0.0:0", gateway_port_file=str(port_file))
        self.wait(port_file.exists, what="the embedded gateway's port")
        port: int = json.loads(port_file.read_text())["port"]
        return port

    def across_veth(self, short: str, port: int) -> str:
        """The embedded gateway as `short` reaches it: the test's end of its own veth."""
        return f"{self.places[short].host_address}:{port}"

    def start_agent(
        self, short: str, region: str, *, dial: str, metrics: bool = False
    ) -> rig.NamespacedAgent:
        """One agent in its namespace; `metrics`: Prometheus on the namespace's loopback."""
        place = self.places[short]
        agent_id = self.name(short)
        pair = identities.issue_agent(self.pki.ca, name=agent_id)
        cert, key = self.root / f"{agent_id}.pem", self.root / f"{agent_id}-key.pem"
        cert.write_bytes(pair.cert_pem)
        key.write_bytes(pair.key_pem)
        config = agent_testing.agent_config(
            pki_=self.pki, data_dir=self.root / agent_id, agent_id=agent_id, region=region,
            zone=f"{region}-a", jurisdiction=_jurisdiction(region), health_window_seconds=5.0,
            listen={"control": f"{place.address}:{rig.WOULD_BE_CONTROL_PORT}", "serving": None},
            tls={"cert_file": str(cert), "key_file": str(key)},
            gateway={"address": dial, "server_name": "localhost",
                     "backoff_initial_seconds": 0.1, "backoff_max_seconds": 1.0,
                     "keepalive_seconds": 1.0, "keepalive_timeout_seconds": 2.0},
        )  # fmt: skip
        if metrics:
            config["telemetry"] = {"metrics_listen": f"127.0.0.1:{rig.METRICS_PORT}"}
        agent = rig.NamespacedAgent(namespace=place, config=config, workdir=self.root)
        self.agents[short] = agent
        agent.start()
        return agent

    def edge_agents(self) -> None:
        """EdgeAgents without an endpoint: reached only where their session is."""
        items = [
            {
                "apiVersion": "edgewave.io/v1alpha1",
                "kind": "EdgeAgent",
                "metadata": {"name": self.name(short), "labels": {RUN_LABEL: self.namespace}},
                "spec": {
                    "region": region,
                    "zone": f"{region}-a",
                    "jurisdiction": _jurisdiction(region),
                },
            }
            for short, region in AGENTS
        ]
        manifest = {"apiVersion": "v1", "kind": "List", "items": items}
        self.kube.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def logs(self) -> str:
        agents = "\n".join(
            f"--- agent {short}\n{agent.log()[-2000:]}" for short, agent in self.agents.items()
        )
        return f"{self.operators.logs()}\n{agents}"

    def wait(self, check: Callable[[], Any], *, what: str, timeout: float = 120.0) -> None:
        wait_until(lambda: bool(check()), what=what, timeout=timeout, logs=self.logs)

    def eag(self) -> dict[str, dict[str, Any]]:
        items = json.loads(
            self.kube.kubectl(
                "get", "eag", "-l", f"{RUN_LABEL}={self.namespace}", "-o", "json"
            ).stdout
        )["items"]
        return {item["metadata"]["name"]: item.get("status") or {} for item in items}

    def connected(self, short: str) -> bool | None:
        status = self.eag().get(self.name(short), {})
        found = status.get("connection", {}).get("connected")
        return None if found is None else bool(found)

    def all_connected(self) -> bool:
        found = self.eag()
        return len(found) == len(AGENTS) and all(
            s.get("connection", {}).get("connected") is True
            and s["connection"].get("gateway") == "embedded"
            for s in found.values()
        )

    def active(self, short: str, version: str) -> bool:
        models = self.eag().get(self.name(short), {}).get("models", [])
        return any(
            m["name"] == "cams" and m["version"] == version and m["state"] == "Active"
            for m in models
        )

    def apply_rollout(self, *, uri: str, sha256: str, **strategy: Any) -> None:
        manifest = rollout_manifest(
            "cams", namespace=self.namespace, model="cams", version="1.0.0", uri=uri,
            sha256=sha256, **strategy,
        )  # fmt: skip
        self.kube.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def rollout(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(
            self.kube.kubectl("get", "mro", "cams", "-n", self.namespace, "-o", "json").stdout
        )
        return body

    def events(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(
            self.kube.kubectl("get", "events", "-n", self.namespace, "-o", "json").stdout
        )["items"]
        return [e for e in items if e["involvedObject"]["kind"] == "ModelRollout"]

    def stored_engine_lines(self, engine: str) -> int:
        text = self.operators.started[0].log_path.read_text(errors="replace")
        return text.count(f"cache: stored engine {engine}")


@pytest.fixture
def edge(
    *,
    crds: clusters.DevCluster,  # noqa: F811
    namespace: str,
    lab: netns.Lab,
    operators: Operators,  # noqa: F811
    pki: agent_testing.Pki,  # noqa: F811
    short_root: Path,
) -> Iterator[Edge]:
    made = Edge(kube=crds, namespace=namespace, lab=lab, processes=operators, agent_pki=pki,
                root=short_root)  # fmt: skip
    yield made
    # The rollout goes while its agents are still connected (its finalizer removes the model
    # from them at once, not after waiting for them); the agents go before their namespaces
    # (the `lab` fixture removes those afterwards).
    crds.kubectl("delete", "modelrollouts", "--all", "-n", namespace, "--timeout=60s",
                 check=False)  # fmt: skip
    for agent in made.agents.values():
        agent.kill()


def _refused(address: str, port: int) -> bool:
    """A connect to address:port is answered with a reset (reachable, nothing listens)."""
    try:
        with socket.create_connection((address, port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def _stored_pushes(agent: rig.NamespacedAgent) -> float:
    return agent.metrics().get(STORED, 0.0)


def test_a_two_wave_two_region_rollout_through_the_embedded_gateway_from_namespaces(
    *,
    edge: Edge,
    model_files: Callable[[float], tuple[str, str]],  # noqa: F811
) -> None:
    port = edge.start_operator()
    for short, region in AGENTS:
        edge.start_agent(short, region, dial=edge.across_veth(short, port))
    edge.edge_agents()
    edge.wait(edge.all_connected, what="every agent's session with the embedded gateway")

    def check_unreachable() -> None:
        for short, agent in edge.agents.items():
            place = agent.namespace
            sockets = place.tcp_sockets()
            assert place.tcp_listeners() == [], (short, sockets)
            outgoing = {(s.remote_address, s.remote_port) for s in sockets
                        if s.state == netns.ESTABLISHED}  # fmt: skip
            assert (place.host_address, port) in outgoing, (short, sockets)
            assert _refused(place.address, rig.WOULD_BE_CONTROL_PORT), short

    check_unreachable()
    uri, sha = model_files(7.0)
    edge.apply_rollout(uri=uri, sha256=sha, waves=_waves(), progressDeadlineSeconds=120)
    result = edge.kube.kubectl(
        "wait", "--for=condition=Ready", "mro/cams", "-n", edge.namespace, "--timeout=150s",
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{result.stderr}\n{edge.logs()}"
    status = edge.rollout()["status"]
    assert [w["phase"] for w in status["waves"]] == ["Succeeded", "Succeeded"]
    assert str(status["ready"]) == "4/4"
    edge.wait(lambda: all(edge.active(s, "1.0.0") for s, _ in AGENTS),
              what="every agent to report 1.0.0 Active")  # fmt: skip
    engine = status["engines"][0]["digest"].removeprefix("sha256:")
    assert edge.stored_engine_lines(engine) == 1, edge.logs()
    check_unreachable()


def _us_wave(body: dict[str, Any]) -> dict[str, Any]:
    waves = (body.get("status") or {}).get("waves", [])
    return next((w for w in waves if w.get("name") == "us"), {})


def test_an_agent_cut_off_in_its_wave_counts_failed_then_converges_with_one_push(
    *,
    toxics: Toxiproxy,  # before `edge`: its proxy outlives the rollout's deletion
    edge: Edge,
    watch: Callable[..., Watcher],  # noqa: F811
    model_files: Callable[[float], tuple[str, str]],  # noqa: F811
) -> None:
    port = edge.start_operator()
    cut_place = edge.places[OFFLINE]
    # The cut agent dials a proxy on its veth, in front of the gateway on loopback.
    proxy: Proxy = toxics.create(
        cut_place.name, listen=f"{cut_place.host_address}:0", upstream=f"127.0.0.1:{port}"
    )
    for short, region in AGENTS:
        dial = proxy.listen if short == OFFLINE else edge.across_veth(short, port)
        edge.start_agent(short, region, dial=dial, metrics=True)
    edge.edge_agents()
    edge.wait(edge.all_connected, what="every agent's session with the embedded gateway")
    for short, agent in edge.agents.items():
        # Gateway mode: the one listener is the metrics endpoint on the namespace's loopback.
        assert [(s.local_address, s.local_port) for s in agent.namespace.tcp_listeners()] == [
            ("127.0.0.1", rig.METRICS_PORT)
        ], short
        assert _refused(agent.namespace.address, rig.WOULD_BE_CONTROL_PORT), short

    # The cut: the proxy closes the session (the gateway sees it end now) and the veth goes
    # down (nothing from the namespace reaches the test's namespace any more).
    toxics.set_enabled(proxy, enabled=False)
    netns.run("ip", "link", "set", cut_place.host_if, "down")
    edge.wait(lambda: edge.connected(OFFLINE) is False, what=f"{OFFLINE} to show disconnected")

    uri, sha = model_files(9.0)
    edge.apply_rollout(uri=uri, sha256=sha, waves=_waves(max_failed=1),
                       unreachableTimeoutSeconds=TIMEOUT_SECONDS)  # fmt: skip
    # Every version of the rollout the API server stores from here on (wave one takes longer
    # than this watch takes to start).
    watcher = watch("mro", "cams", "-n", edge.namespace)
    edge.wait(lambda: (edge.rollout().get("status") or {}).get("phase") == "Succeeded",
              what="the rollout to succeed without the offline agent")  # fmt: skip
    status = edge.rollout()["status"]
    us = _us_wave({"status": status})
    assert (us["phase"], us["updated"], us["failed"], us["offline"]) == ("Succeeded", 1, 1, 1)
    assert status["totals"]["offline"] == 1
    # Before the timeout the wave counted it offline (unavailable), not failed.
    seen = [_us_wave(item) for item in watcher.seen()]
    waiting = [w for w in seen if w.get("offline") == 1 and w.get("failed", 0) == 0
               and w.get("phase") not in ("Succeeded", "Failed", "Pending", None)]  # fmt: skip
    assert waiting, seen
    offline_events = [e for e in edge.events() if e["reason"] == "AgentsOffline"]
    assert any(
        edge.name(OFFLINE) in e["message"] and "offline" in e["message"] for e in offline_events
    ), offline_events
    assert [e["reason"] for e in edge.events()].count("WaveStarted") == 2
    started = {w["name"]: w["startedAt"] for w in status["waves"]}
    engine = status["engines"][0]["digest"].removeprefix("sha256:")
    cut_agent = edge.agents[OFFLINE]
    assert _stored_pushes(cut_agent) == 0.0  # its metrics, read inside its namespace

    # The link comes back: the agent reconnects by itself and is brought to the version.
    netns.run("ip", "link", "set", cut_place.host_if, "up")
    toxics.set_enabled(proxy, enabled=True)
    edge.wait(lambda: edge.connected(OFFLINE) is True, what=f"{OFFLINE} to reconnect")
    edge.wait(lambda: edge.active(OFFLINE, "1.0.0"), what=f"{OFFLINE} to converge to 1.0.0")
    edge.wait(lambda: edge.rollout()["status"].get("totals", {}).get("updated") == 4,
              what="the status to count the late agent updated")  # fmt: skip
    after = edge.rollout()["status"]
    assert after["phase"] == "Succeeded"
    assert {w["name"]: w["startedAt"] for w in after["waves"]} == started  # no wave replayed
    us = _us_wave({"status": after})
    assert (us["updated"], us["failed"], us["offline"]) == (2, 0, 0)
    reasons = [e["reason"] for e in edge.events()]
    assert "ConvergingLateAgents" in reasons
    assert reasons.count("WaveStarted") == 2
    # Exactly one push of the engine to each agent (the late one included), and the engine
    # entered the gateway's cache once.
    assert {short: _stored_pushes(a) for short, a in edge.agents.items()} == {
        short: 1.0 for short, _ in AGENTS
    }
    assert edge.stored_engine_lines(engine) == 1, edge.logs()
