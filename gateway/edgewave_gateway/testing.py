"""Run real gateways and gateway-mode agents in tests and benchmarks.

`GatewayPki` issues every certificate a gateway deployment needs from one test CA (the
gateway's serving certificate, the operator's, agents' and an intruder's from another CA);
`GatewayProcess` runs `edgewave gateway run` as a subprocess on port 0 (or a given port,
to restart it where agents expect it) and reads the bound port from its port file.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgewave_api import identities, pki, signing


@dataclass(frozen=True)
class GatewayPki:
    directory: Path
    ca: pki.KeyPair
    gateway: pki.KeyPair
    operator: pki.KeyPair
    signing_key: signing.SigningKey

    @classmethod
    def create(cls, directory: Path) -> GatewayPki:
        directory.mkdir(parents=True, exist_ok=True)
        ca = pki.new_ca("edgewave-test-ca")
        made = cls(
            directory=directory,
            ca=ca,
            gateway=identities.issue_gateway(ca, name="gateway"),
            operator=identities.issue_operator(ca, validity=datetime.timedelta(days=1)),
            signing_key=signing.new_signing_key(),
        )
        for name, content in {
            "ca.pem": ca.cert_pem,
            "gateway.pem": made.gateway.cert_pem,
            "gateway-key.pem": made.gateway.key_pem,
            "activation.pub": made.signing_key.public_pem,
        }.items():
            (directory / name).write_bytes(content)
        return made

    def agent_files(self, name: str) -> tuple[Path, Path]:
        """An agent's certificate (server + client, URI SAN agent/<name>) on disk."""
        pair = identities.issue_agent(self.ca, name=name)
        cert, key = self.directory / f"{name}.pem", self.directory / f"{name}-key.pem"
        cert.write_bytes(pair.cert_pem)
        key.write_bytes(pair.key_pem)
        return cert, key


def gateway_config(
    *, pki_: GatewayPki, root: Path, name: str = "gw-1", **extra: Any
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": name,
        "listen": "127.0.0.1:0",
        "tls": {
            "cert_file": str(pki_.directory / "gateway.pem"),
            "key_file": str(pki_.directory / "gateway-key.pem"),
            "client_ca_file": str(pki_.directory / "ca.pem"),
        },
        "cache": {"directory": str(root / name / "cache"), "checkpoint_bytes": 1 << 20},
        "port_file": str(root / name / "port.json"),
        "heartbeat_seconds": 1.0,
        "attach_timeout_seconds": 5.0,
        "ping_timeout_seconds": 1.0,
        "last_seen_resolution_seconds": 0,
    }
    config.update(extra)
    return config


def agent_gateway_settings(
    *, pki_: GatewayPki, name: str, address: str, **link: Any
) -> dict[str, Any]:
    """What to merge into an agent config (edgewave_agent.testing.agent_config) so it
    dials `address` with an agent certificate and opens no control port."""
    cert, key = pki_.agent_files(name)
    return {
        "tls": {
            "cert_file": str(cert),
            "key_file": str(key),
            "client_ca_file": str(pki_.directory / "ca.pem"),
        },
        "activation_public_key_file": str(pki_.directory / "activation.pub"),
        "gateway": {
            "address": address,
            "server_name": "localhost",
            "backoff_initial_seconds": 0.1,
            "backoff_max_seconds": 1.0,
            **link,
        },
    }


class GatewayProcess:
    """An `edgewave gateway run` subprocess."""

    def __init__(self, *, config: dict[str, Any], workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.config_path = workdir / f"{config['name']}.yaml"
        self.port_file = Path(config["port_file"])
        self.log_path = workdir / f"{config['name']}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, *, timeout: float = 30.0) -> GatewayProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.port_file.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from edgewave_operator.cli import main; main()",
                    "gateway",
                    "run",
                    "--config",
                    str(self.config_path),
                    "--log-level",
                    "INFO",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while not self.port_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway did not bind its port; log:\n{self.log()}")
            time.sleep(0.05)
        self.port = int(json.loads(self.port_file.read_text())["port"])
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
