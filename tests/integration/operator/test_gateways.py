"""Agents behind NAT: the operator reaches them only through gateways (real processes).

The agents here are `edgewave-agent serve --gateway` processes with no listening control
TCP socket (checked from /proc against each process's own socket inodes) and EdgeAgents
without `spec.endpoint`; the operator is a real `edgewave_operator.main` process on a real
API server. One test uses the gateway embedded in the operator, the other a standalone
`edgewave gateway run` that is SIGKILLed and restarted, while the operator leader changes,
mid-rollout: the engine enters that gateway's cache once (its log says so per engine).
"""

from __future__ import annotations

import datetime
import json
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from edgewave_agent import testing as agent_testing
from edgewave_api import identities
from edgewave_api import pki as pki_module
from edgewave_gateway import testing as gateway_testing
from edgewave_operator.devcluster import clusters

pytestmark = [pytest.mark.integration, pytest.mark.slow]
Operators = Any
RUN_LABEL = "edgewave.test/run"
AGENTS = (("gw-ew-0", "eu-west"), ("gw-ew-1", "eu-west"), ("gw-ue-0", "us-east"),
          ("gw-ue-1", "us-east"))  # fmt: skip
WAVES = [
    {"name": "eu", "regions": ["eu-west"], "maxUnavailable": 1},
    {"name": "us", "regions": ["us-east"], "maxUnavailable": 2},
]
_LISTEN = "0A"


def _jurisdiction(region: str) -> str:
    return "EU" if region.startswith("eu") else "US"


class DialingAgent(agent_testing.AgentProcess):
    """An agent process without ports: gateway mode, no serving port."""

    def wait_serving(self, *, deadline: float) -> None:
        if self.serving_port:
            super().wait_serving(deadline=deadline)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def listening_tcp_ports(pid: int) -> list[int]:
    """TCP ports in LISTEN state held by `pid` (IPv4 and IPv6), from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == _LISTEN and fields[9] in inodes:
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    # Unix socket paths are at most 107 bytes: keep the agents' data dirs short.
    directory = Path(tempfile.mkdtemp(prefix="ew-op-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def run_id() -> str:
    """Prefix of this test's agent names: EdgeAgents are cluster-scoped, and an EdgeAgent's
    name is its agent's name (its certificate's Common Name, as its gateway session says)."""
    return f"g{secrets.token_hex(3)}"


@pytest.fixture
def dialing(
    *,
    pki: agent_testing.Pki,
    short_tmp: Path,
    run_id: str,
    crds: clusters.DevCluster,
    namespace: str,
    operators: Operators,
) -> Iterator[Callable[[str], list[DialingAgent]]]:
    """Start the four agents, dialling the gateway at an address (their certificates from
    the operator's CA, Organization edgewave-agents). Afterwards the test's rollouts are
    deleted while the agents are still connected, so the finalizer removes the model at
    once instead of retrying for agents that are gone (about 30 s)."""
    started: list[DialingAgent] = []

    def start(address: str) -> list[DialingAgent]:
        for short, region in AGENTS:
            agent_id = f"{run_id}-{short}"
            pair = identities.issue_agent(pki.ca, name=agent_id)
            cert, key = short_tmp / f"{agent_id}.pem", short_tmp / f"{agent_id}-key.pem"
            cert.write_bytes(pair.cert_pem)
            key.write_bytes(pair.key_pem)
            config = agent_testing.agent_config(
                pki_=pki, data_dir=short_tmp / agent_id, agent_id=agent_id, region=region,
                zone=f"{region}-a", jurisdiction=_jurisdiction(region),
                health_window_seconds=5.0, listen={"serving": None},
                tls={"cert_file": str(cert), "key_file": str(key)},
                gateway={"address": address, "server_name": "localhost",
                         "backoff_initial_seconds": 0.1, "backoff_max_seconds": 1.0},
            )  # fmt: skip
            agent = DialingAgent(config=config, workdir=short_tmp)
            started.append(agent)
            agent.start()
        return started

    yield start
    if any(p.alive() for p in operators.started):
        crds.kubectl("delete", "modelrollouts", "--all", "-n", namespace, "--timeout=60s",
                     check=False)  # fmt: skip
    for agent in started:
        agent.stop()


@pytest.fixture
def standalone_gateway(
    pki: agent_testing.Pki, short_tmp: Path
) -> Iterator[gateway_testing.GatewayProcess]:
    """`edgewave gateway run` (not started), its serving certificate from the operator's CA."""
    served = identities.issue_gateway(pki.ca, name="gw-a")
    (short_tmp / "gw.pem").write_bytes(served.cert_pem)
    (short_tmp / "gw-key.pem").write_bytes(served.key_pem)
    (short_tmp / "ca.pem").write_bytes(pki.ca.cert_pem)
    config = gateway_testing.gateway_config(
        pki_=gateway_testing.GatewayPki(
            directory=short_tmp, ca=pki.ca, gateway=served, operator=served,
            signing_key=pki.signing_key,
        ),
        root=short_tmp, name="gw-a",
        tls={"cert_file": str(short_tmp / "gw.pem"), "key_file": str(short_tmp / "gw-key.pem"),
             "client_ca_file": str(short_tmp / "ca.pem")},
    )  # fmt: skip
    gateway = gateway_testing.GatewayProcess(config=config, workdir=short_tmp / "gateways")
    yield gateway
    gateway.kill()


def edge_agents(kube: clusters.DevCluster, namespace: str, run_id: str) -> None:
    """EdgeAgents without an endpoint: reached only where their session is."""
    items = [
        {
            "apiVersion": "edgewave.io/v1alpha1",
            "kind": "EdgeAgent",
            "metadata": {"name": f"{run_id}-{agent_id}", "labels": {RUN_LABEL: namespace}},
            "spec": {
                "region": region,
                "zone": f"{region}-a",
                "jurisdiction": _jurisdiction(region),
            },
        }
        for agent_id, region in AGENTS
    ]
    kube.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                       "items": items}))  # fmt: skip


def rollout(namespace: str, *, uri: str, sha256: str, pause: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "edgewave.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": "cams", "namespace": namespace},
        "spec": {
            "model": {"name": "cams", "version": "1.0.0", "uri": uri, "sha256": sha256},
            "targets": {"selector": {"matchLabels": {RUN_LABEL: namespace}}},
            "build": {"precision": "FP32", "backends": ["ONNXRuntime"]},
            "strategy": {
                "waves": WAVES,
                "healthGate": {"windowSeconds": 1, "minSamples": 0, "maxErrorRate": 0.5},
                "pauseBetweenWavesSeconds": pause,
                "progressDeadlineSeconds": 120,
            },
        },
    }


def wait_for(check: Callable[[], bool], *, what: str, logs: Callable[[], str],
             timeout: float = 120.0) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs()}")
        time.sleep(0.3)


def agents_json(kube: clusters.DevCluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        kube.kubectl("get", "eag", "-l", f"{RUN_LABEL}={namespace}", "-o", "json").stdout
    )["items"]
    return items


def all_connected(kube: clusters.DevCluster, namespace: str, gateway: str) -> bool:
    items = agents_json(kube, namespace)
    return len(items) == len(AGENTS) and all(
        (a.get("status") or {}).get("connection", {}).get("connected") is True
        and a["status"]["connection"].get("gateway") == gateway
        for a in items
    )


def ready_count(kube: clusters.DevCluster, namespace: str) -> str:
    body = json.loads(kube.kubectl("get", "mro", "cams", "-n", namespace, "-o", "json").stdout)
    return str((body.get("status") or {}).get("ready", ""))


def wave_phases(kube: clusters.DevCluster, namespace: str) -> list[str]:
    body = json.loads(kube.kubectl("get", "mro", "cams", "-n", namespace, "-o", "json").stdout)
    return [w.get("phase", "") for w in (body.get("status") or {}).get("waves", [])]


def test_a_two_wave_two_region_rollout_reaches_ready_through_the_embedded_gateway(
    *,
    crds: clusters.DevCluster,
    namespace: str,
    operators: Operators,
    model_files: Callable[[float], tuple[str, str]],
    dialing: Callable[[str], list[DialingAgent]],
    short_tmp: Path,
    run_id: str,
) -> None:
    port_file = short_tmp / "gateway-port.json"
    operators.start(gateway_port_file=str(port_file), gateway_name="embedded")
    wait_for(port_file.exists, what="the embedded gateway's port", logs=operators.logs)
    port = json.loads(port_file.read_text())["port"]
    agents = dialing(f"127.0.0.1:{port}")
    # Gateway mode: no agent listens on any TCP port (the operator cannot dial them).
    assert {a.config["agent_id"]: listening_tcp_ports(a.pid) for a in agents} == {
        f"{run_id}-{agent_id}": [] for agent_id, _ in AGENTS
    }
    edge_agents(crds, namespace, run_id)
    wait_for(lambda: all_connected(crds, namespace, "embedded"), what="sessions",
             logs=operators.logs)  # fmt: skip
    table = crds.kubectl("get", "eag", "-l", f"{RUN_LABEL}={namespace}").stdout
    header, *rows = table.splitlines()
    assert "CONNECTED" in header.split() and "GATEWAY" in header.split()
    assert len(rows) == len(AGENTS) and all("true" in r and "embedded" in r for r in rows)

    uri, sha = model_files(3.0)
    crds.kubectl("apply", "-f", "-", input=json.dumps(rollout(namespace, uri=uri, sha256=sha)))
    result = crds.kubectl(
        "wait", "--for=condition=Ready", "mro/cams", "-n", namespace, "--timeout=150s",
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{result.stderr}\n{operators.logs()}"
    assert wave_phases(crds, namespace) == ["Succeeded", "Succeeded"]
    assert ready_count(crds, namespace) == "4/4"

    def all_active() -> bool:
        return all(
            any(m["name"] == "cams" and m["version"] == "1.0.0" and m["state"] == "Active"
                for m in (a.get("status") or {}).get("models", []))
            for a in agents_json(crds, namespace)
        )  # fmt: skip

    wait_for(all_active, what="every agent to report 1.0.0 Active", logs=operators.logs)
    # One gateway: the engine entered the embedded gateway's cache once, for four agents.
    body = json.loads(crds.kubectl("get", "mro", "cams", "-n", namespace, "-o", "json").stdout)
    engine = body["status"]["engines"][0]["digest"].removeprefix("sha256:")
    log = operators.started[0].log_path.read_text(errors="replace")
    assert log.count(f"cache: stored engine {engine}") == 1, operators.logs()
    for agent in agents:
        assert listening_tcp_ports(agent.pid) == []


def test_a_gateway_restart_and_a_new_leader_mid_rollout_upload_the_engine_once(
    *,
    crds: clusters.DevCluster,
    namespace: str,
    operators: Operators,
    standalone_gateway: gateway_testing.GatewayProcess,
    model_files: Callable[[float], tuple[str, str]],
    dialing: Callable[[str], list[DialingAgent]],
    short_tmp: Path,
    run_id: str,
) -> None:
    gateway = standalone_gateway.start()
    agents = dialing(gateway.address)
    settings = {"gateway_listen": "", "gateways": json.dumps({"gw-a": gateway.address})}
    first = operators.start("op-0", **settings)
    edge_agents(crds, namespace, run_id)

    def logs() -> str:
        return f"{operators.logs()}\n--- gateway\n{gateway.log()[-4000:]}"

    wait_for(lambda: all_connected(crds, namespace, "gw-a"), what="sessions", logs=logs)
    uri, sha = model_files(5.0)
    manifest = rollout(namespace, uri=uri, sha256=sha, pause=8)
    crds.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    # Wave one done (the engine is in the gateway's cache), wave two waits out the pause.
    wait_for(lambda: wave_phases(crds, namespace)[:1] == ["Succeeded"], what="wave one",
             logs=logs)  # fmt: skip
    assert gateway.log().count("cache: stored engine") == 1
    first.kill()
    # The gateway dies too, and comes back on the same port (its cache on the same disk).
    gateway.kill()
    gateway.config["listen"] = f"127.0.0.1:{gateway.port}"
    gateway.start()
    operators.start("op-1", **settings)
    result = crds.kubectl(
        "wait", "--for=condition=Ready", "mro/cams", "-n", namespace, "--timeout=150s",
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{result.stderr}\n{logs()}"
    assert wave_phases(crds, namespace) == ["Succeeded", "Succeeded"]
    assert ready_count(crds, namespace) == "4/4"
    wait_for(lambda: all_connected(crds, namespace, "gw-a"), what="sessions again", logs=logs)
    # Stat first, always: neither the new leader nor the restarted gateway caused a second
    # upload of the engine into that gateway's cache.
    stored = [line for line in gateway.log().splitlines() if "cache: stored engine" in line]
    assert len(stored) == 1, stored
    # The rollout pins its engine in the gateway's cache (persisted in the cache's index);
    # deleting the rollout releases it.
    body = json.loads(crds.kubectl("get", "mro", "cams", "-n", namespace, "-o", "json").stdout)
    engine = body["status"]["engines"][0]["digest"].removeprefix("sha256:")
    index = Path(gateway.config["cache"]["directory"]) / "index.json"
    owner = f"rollout-{body['metadata']['uid']}"
    assert json.loads(index.read_text())["pins"] == {owner: [engine]}
    crds.kubectl("delete", "mro", "cams", "-n", namespace, "--timeout=60s")
    assert json.loads(index.read_text())["pins"] == {}
    for agent in agents:
        assert listening_tcp_ports(agent.pid) == []


def test_an_embedded_gateway_port_in_use_stops_the_operator_with_one_clear_line(
    *, crds: clusters.DevCluster, operators: Operators
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = operators.start("op-busy", gateway_listen=f"127.0.0.1:{port}")
        process.popen.wait(timeout=90)
    assert process.popen.returncode == 1, process.log()
    assert f"error: the embedded gateway cannot listen on 127.0.0.1:{port}" in process.log()
    assert "Traceback" not in process.log()


def test_the_operator_renews_a_due_agent_certificate_over_its_gateway_session(
    *,
    crds: clusters.DevCluster,
    namespace: str,
    operators: Operators,
    pki: agent_testing.Pki,
    short_tmp: Path,
    run_id: str,
) -> None:
    """Issue #14 item 9: an agent behind NAT, whose certificate has a third of its life
    left, gets a new one from the operator through the gateway it dialled; once the first
    has expired, the restarted agent dials in again with the renewed one."""
    port_file = short_tmp / "gateway-port.json"
    operators.start(gateway_port_file=str(port_file), gateway_name="embedded")
    wait_for(port_file.exists, what="the embedded gateway's port", logs=operators.logs)
    address = f"127.0.0.1:{json.loads(port_file.read_text())['port']}"
    agent_id, region = f"{run_id}-renew", "eu-west"
    # 20 s left of a 5 min 20 s life (issued back-dated 5 minutes): due at once.
    first = pki_issue_agent(pki, agent_id, left=20)
    cert, key = short_tmp / f"{agent_id}.pem", short_tmp / f"{agent_id}-key.pem"
    cert.write_bytes(first.cert_pem)
    key.write_bytes(first.key_pem)
    config = agent_testing.agent_config(
        pki_=pki, data_dir=short_tmp / agent_id, agent_id=agent_id, region=region,
        zone=f"{region}-a", jurisdiction="EU", listen={"serving": None},
        tls={"cert_file": str(cert), "key_file": str(key)},
        gateway={"address": address, "server_name": "localhost",
                 "backoff_initial_seconds": 0.1, "backoff_max_seconds": 1.0},
    )  # fmt: skip
    agent = DialingAgent(config=config, workdir=short_tmp)
    agent.start()
    try:
        crds.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "edgewave.io/v1alpha1", "kind": "EdgeAgent",
            "metadata": {"name": agent_id, "labels": {RUN_LABEL: namespace}},
            "spec": {"region": region, "zone": f"{region}-a", "jurisdiction": "EU"},
        }))  # fmt: skip
        renewed = short_tmp / agent_id / "identity" / "cert.pem"
        wait_for(renewed.exists, what="the renewed certificate", logs=operators.logs)
        old = x509.load_pem_x509_certificate(first.cert_pem)
        new = x509.load_pem_x509_certificate(renewed.read_bytes())
        assert new.public_key() != old.public_key()
        assert new.not_valid_after_utc > old.not_valid_after_utc
        assert new.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ) == old.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        # The first certificate expires; the agent, restarted, dials in with the new one.
        wait_for(
            lambda: datetime.datetime.now(datetime.UTC)
            > old.not_valid_after_utc + datetime.timedelta(seconds=1),
            what="the first certificate to expire", logs=operators.logs, timeout=60,
        )  # fmt: skip
        agent.stop()
        wait_for(lambda: connection(crds, namespace, agent_id).get("connected") is False,
                 what="the agent to read as disconnected", logs=operators.logs)  # fmt: skip
        agent.start()
        wait_for(lambda: connection(crds, namespace, agent_id).get("connected") is True,
                 what="the agent's new session", logs=lambda: operators.logs()
                 + "\n--- agent\n" + agent.log())  # fmt: skip
    finally:
        agent.stop()


def connection(kube: clusters.DevCluster, namespace: str, name: str) -> dict[str, Any]:
    items = [a for a in agents_json(kube, namespace) if a["metadata"]["name"] == name]
    found: dict[str, Any] = (items[0].get("status") or {}).get("connection", {}) if items else {}
    return found


def pki_issue_agent(pki: agent_testing.Pki, name: str, *, left: float) -> Any:
    return pki_module.issue(
        pki.ca, common_name=name, dns_names=("localhost",), ip_addresses=("127.0.0.1",),
        uris=(identities.agent(name),), server=True, client=True,
        validity=datetime.timedelta(seconds=left),
    )  # fmt: skip
