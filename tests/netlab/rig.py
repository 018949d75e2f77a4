"""Gateways, agents and uploaders placed in network namespaces, for fault tests and benchmarks.

The gateway runs in the test's (root) namespace on loopback, as `edgewave gateway run`; each
agent runs in its own namespace with `ip netns exec` and dials the gateway through a
Toxiproxy proxy that listens on the test's end of that namespace's veth (so a cut, a reset
or added latency sits between them). The agent's config still names a control address on
its veth (`WOULD_BE_CONTROL_PORT`): in gateway mode it must not listen there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgewave_agent import testing as agent_testing
from edgewave_gateway import testing
from tests.netlab import netns

REPO = Path(__file__).resolve().parents[2]
WOULD_BE_CONTROL_PORT = 7443
METRICS_PORT = 9464


def write_operator_files(pki: testing.GatewayPki) -> Path:
    """The operator's certificate and key next to the CA (for uploaders in a namespace)."""
    (pki.directory / "operator.pem").write_bytes(pki.operator.cert_pem)
    (pki.directory / "operator-key.pem").write_bytes(pki.operator.key_pem)
    return pki.directory


def gateway_process(
    *,
    pki: testing.GatewayPki,
    root: Path,
    name: str = "gw-1",
    host: str = "127.0.0.1",
    port: int = 0,
    **extra: Any,
) -> testing.GatewayProcess:
    config = testing.gateway_config(
        pki_=pki, root=root, name=name, listen=f"{host}:{port}", **extra
    )
    return testing.GatewayProcess(config=config, workdir=root / "gateways")


class NamespacedAgent(agent_testing.AgentProcess):
    """An agent process in a namespace, in gateway mode, with no port the test could reach."""

    def __init__(self, *, namespace: netns.Namespace, **kwargs: Any) -> None:
        super().__init__(command_prefix=namespace.argv(), **kwargs)
        self.namespace = namespace

    def wait_serving(self, *, deadline: float) -> None:
        """Nothing to probe from here: readiness is its session with the gateway."""

    def metrics(self) -> dict[str, float]:
        """Its Prometheus samples (name{labels} -> value), read inside its namespace."""
        url = f"http://127.0.0.1:{METRICS_PORT}/metrics"
        script = (
            "import urllib.request;"
            f" print(urllib.request.urlopen({url!r}, timeout=10).read().decode())"
        )
        text = self.namespace.run(sys.executable, "-c", script)
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        return samples


def agent_process(
    *,
    namespace: netns.Namespace,
    pki: testing.GatewayPki,
    root: Path,
    name: str,
    gateway_address: str,
    metrics: bool = False,
    **extra: Any,
) -> NamespacedAgent:
    placeholder = agent_testing.Pki.create(root / "placeholder-pki")
    config = agent_testing.agent_config(
        pki_=placeholder,
        data_dir=root / name,
        agent_id=name,
        listen={"control": f"{namespace.address}:{WOULD_BE_CONTROL_PORT}", "serving": None},
        status_interval_seconds=5.0,
        **extra,
    )
    config.update(testing.agent_gateway_settings(pki_=pki, name=name, address=gateway_address))
    if metrics:
        config["telemetry"] = {"metrics_listen": f"127.0.0.1:{METRICS_PORT}"}
    return NamespacedAgent(namespace=namespace, config=config, workdir=root)


def upload_argv(
    namespace: netns.Namespace,
    *,
    pki_dir: Path,
    gateway_address: str,
    engine: Path,
    digest: str,
    chunk_bytes: int = 1 << 20,
) -> list[str]:
    """The command that uploads `engine` to the gateway's cache from inside `namespace`
    (one attempt; run it with cwd=REPO, read its outcome with `upload_outcome`)."""
    return namespace.argv(
        sys.executable, "-m", "tests.netlab.upload",
        "--gateway", gateway_address, "--pki", str(pki_dir), "--engine", str(engine),
        "--digest", digest, "--chunk-bytes", str(chunk_bytes),
    )  # fmt: skip


def upload_outcome(returncode: int | None, stdout: str, stderr: str) -> dict[str, Any]:
    if returncode != 0 or not stdout.strip():
        raise RuntimeError(f"uploader failed ({returncode}): {stderr[-3000:]}")
    outcome: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return outcome


def upload(namespace: netns.Namespace, *, timeout: float = 300.0, **kwargs: Any) -> dict[str, Any]:
    """Upload an engine from inside `namespace` (see `upload_argv`), waiting for the end."""
    result = subprocess.run(
        upload_argv(namespace, **kwargs),
        cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    return upload_outcome(result.returncode, result.stdout, result.stderr)


def wait_for(predicate: Any, *, what: str, timeout: float = 60.0, every: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
