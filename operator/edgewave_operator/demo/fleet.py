"""The demo's six edge agents: certificates, configurations and `edgewave-agent serve` processes.

Two agents per region in eu-west, eu-central (EU) and us-east (US). Like agents behind NAT,
they open no control port: each dials the gateway embedded in the operator
(`edgewave-agent serve` with a `gateway` section) with an agent certificate from the
operator's CA (naming it spiffe://edgewave/agent/<name>), trusts that CA for
the gateway, and verifies grants with the operator's Ed25519 public key. Inference
stays local, on a serving port the kernel picks. They report the hardware they really
have: on a machine without a GPU, none, and they serve with ONNX Runtime.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgewave_api import identities, pki
from edgewave_api.errors import TemporaryError
from edgewave_operator.devcluster import processes

START_TIMEOUT = 90.0


@dataclass(frozen=True)
class Site:
    name: str
    region: str
    zone: str
    jurisdiction: str


SITES = (
    Site("edge-eu-west-1", "eu-west", "eu-west-a", "EU"),
    Site("edge-eu-west-2", "eu-west", "eu-west-b", "EU"),
    Site("edge-eu-central-1", "eu-central", "eu-central-a", "EU"),
    Site("edge-eu-central-2", "eu-central", "eu-central-b", "EU"),
    Site("edge-us-east-1", "us-east", "us-east-1a", "US"),
    Site("edge-us-east-2", "us-east", "us-east-1b", "US"),
)


@dataclass(frozen=True)
class Trust:
    """Files every agent shares: the operator's CA and its activation public key."""

    ca: pki.KeyPair
    ca_file: Path
    activation_key_file: Path

    @classmethod
    def write(cls, *, ca: pki.KeyPair, activation_public_pem: bytes, directory: Path) -> Trust:
        directory.mkdir(parents=True, exist_ok=True)
        ca_file = directory / "ca.pem"
        ca_file.write_bytes(ca.cert_pem)
        key_file = directory / "activation.pub"
        key_file.write_bytes(activation_public_pem)
        return cls(ca=ca, ca_file=ca_file, activation_key_file=key_file)


@dataclass
class Agent:
    site: Site
    directory: Path
    child: processes.Child
    serving_port: int = 0

    @property
    def serving(self) -> str:
        """The serving port (TLS): inference, health."""
        return f"127.0.0.1:{self.serving_port}"

    @property
    def port_file(self) -> Path:
        return self.directory / "ports.json"


def config(
    site: Site, *, directory: Path, trust: Trust, short: bool, gateway: str
) -> dict[str, Any]:
    """The agent's configuration (agent.yaml), dialling `gateway`, its certificate next to it."""
    serving = identities.issue_agent(trust.ca, name=site.name)
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(serving.cert_pem)
    key_file.write_bytes(serving.key_pem)
    key_file.chmod(0o600)
    return {
        "agent_id": site.name,
        "region": site.region,
        "zone": site.zone,
        "jurisdiction": site.jurisdiction,
        "data_dir": str(directory / "data"),
        "listen": {"serving": "127.0.0.1:0"},
        "gateway": {
            "address": gateway,
            "server_name": "localhost",
            "backoff_initial_seconds": 0.2,
            "backoff_max_seconds": 2.0,
        },
        "tls": {
            "cert_file": str(cert_file),
            "key_file": str(key_file),
            "client_ca_file": str(trust.ca_file),
        },
        "activation_public_key_file": str(trust.activation_key_file),
        "port_file": str(directory / "ports.json"),
        "status_interval_seconds": 1.0,
        "health_window_seconds": 10.0 if short else 30.0,
        "probe": {"warmup_runs": 1, "probe_runs": 2},
        "store": {"quota_bytes": "1GiB"},
    }


def command(config_file: Path) -> list[str]:
    """`edgewave-agent serve --config FILE`, from this environment's scripts when there."""
    script = Path(sys.executable).with_name("edgewave-agent")
    base = (
        [str(script)]
        if script.is_file()
        else [sys.executable, "-c", "from edgewave_agent.cli import main; main()"]
    )
    return [*base, "serve", "--config", str(config_file), "--log-level", "WARNING"]


def start(
    sites: Sequence[Site],
    *,
    directory: Path,
    trust: Trust,
    short: bool,
    detached: bool,
    gateway: str,
) -> list[Agent]:
    """Start one agent process per site, dialling `gateway`; wait until each is up."""
    env = processes.child_environment(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    agents: list[Agent] = []
    try:
        for site in sites:
            home = directory / site.name
            home.mkdir(parents=True, exist_ok=True)
            config_file = home / "agent.yaml"
            config_file.write_text(
                yaml.safe_dump(
                    config(site, directory=home, trust=trust, short=short, gateway=gateway)
                )
            )
            (home / "ports.json").unlink(missing_ok=True)
            child = processes.spawn(
                command(config_file),
                name=site.name,
                log_path=home / "agent.log",
                detached=detached,
                env=env,
            )
            agents.append(Agent(site=site, directory=home, child=child))
        _wait_bound(agents)
    except BaseException:
        stop(agents)
        raise
    return agents


def _wait_bound(agents: Sequence[Agent]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    for agent in agents:
        while not agent.port_file.exists():
            if processes.is_gone(agent.child):
                raise TemporaryError(
                    f"agent {agent.site.name} exited while starting; its log "
                    f"({agent.child.log_path}) ends:\n{processes.log_tail(agent.child.log_path)}"
                )
            if time.monotonic() > deadline:
                raise TemporaryError(
                    f"agent {agent.site.name} did not bind its ports in {START_TIMEOUT:.0f} s; "
                    f"see {agent.child.log_path}"
                )
            time.sleep(0.1)
        ports = json.loads(agent.port_file.read_text())
        agent.serving_port = int(ports["serving"])


def stop(agents: Sequence[Agent]) -> None:
    """SIGTERM (graceful) to every agent at once, SIGKILL after the grace period."""
    processes.stop([agent.child for agent in agents])
