"""Run real agents in tests: certificates, configs, small ONNX models, agent processes.

Like `kopf.testing`, for the agent's own tests and the operator's: agents run as real
`edgewave-agent serve` subprocesses on port 0; the bound ports are read from the port file
they write and readiness from grpc.health.v1. Many agents can also run in one process with
`edgewave_agent.server.AgentServer`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
import onnx
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from onnx import TensorProto, helper

from edgewave_api import identities, pki, signing

T = TypeVar("T")


@dataclass(frozen=True)
class Pki:
    directory: Path
    ca: pki.KeyPair
    server: pki.KeyPair
    operator: pki.KeyPair
    intruder: pki.KeyPair  # signed by another CA
    signing_key: signing.SigningKey

    @classmethod
    def create(cls, directory: Path) -> Pki:
        directory.mkdir(parents=True, exist_ok=True)
        ca = pki.new_ca("edgewave-test-ca")
        other = pki.new_ca("someone-else")
        made = cls(
            directory=directory,
            ca=ca,
            server=pki.issue(
                ca,
                common_name="agent",
                dns_names=("localhost",),
                ip_addresses=("127.0.0.1",),
                uris=(identities.agent("agent"),),
                # clientAuth too, as agents' certificates are (they dial out, issue #15).
                server=True,
                client=True,
            ),
            operator=pki.issue(
                ca, common_name="edgewave-operator", uris=(identities.operator(),), client=True
            ),
            intruder=pki.issue(other, common_name="intruder", client=True),
            signing_key=signing.new_signing_key(),
        )
        for name, content in {
            "ca.pem": ca.cert_pem,
            "server.pem": made.server.cert_pem,
            "server-key.pem": made.server.key_pem,
            "activation.pub": made.signing_key.public_pem,
        }.items():
            (directory / name).write_bytes(content)
        return made


def agent_config(
    *, pki_: Pki, data_dir: Path, agent_id: str = "edge-1", **extra: Any
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "agent_id": agent_id,
        "region": "eu-central",
        "zone": "eu-central-1a",
        "jurisdiction": "EU",
        "data_dir": str(data_dir),
        "listen": {"control": "127.0.0.1:0", "serving": "127.0.0.1:0"},
        "tls": {
            "cert_file": str(pki_.directory / "server.pem"),
            "key_file": str(pki_.directory / "server-key.pem"),
            "client_ca_file": str(pki_.directory / "ca.pem"),
        },
        "activation_public_key_file": str(pki_.directory / "activation.pub"),
        "port_file": str(data_dir / "ports.json"),
        "status_interval_seconds": 0.2,
        "probe": {"warmup_runs": 1, "probe_runs": 1},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def linear_model(*, scale: float, size: int = 4, nan: bool = False) -> bytes:
    """y = x * w + b with w = scale * [1..size]; `nan` makes every output NaN."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", size])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", size])
    w = np.arange(1, size + 1, dtype=np.float32) * scale
    b = np.full(size, np.nan if nan else 0.25, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "linear",
        [x],
        [y],
        [
            helper.make_tensor("w", TensorProto.FLOAT, [size], w.tolist()),
            helper.make_tensor("b", TensorProto.FLOAT, [size], b.tolist()),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_artifact(directory: Path, data: bytes) -> tuple[Path, str]:
    digest = hashlib.sha256(data).hexdigest()
    path = directory / f"{digest[:16]}.bin"
    path.write_bytes(data)
    return path, digest


class AgentProcess:
    """An `edgewave-agent serve` subprocess."""

    def __init__(
        self, *, config: dict[str, Any], workdir: Path, command_prefix: Sequence[str] = ()
    ) -> None:
        self.config = config
        self.workdir = workdir
        # Run the agent under this command, e.g. `ip netns exec NAME` (network fault tests).
        self.command_prefix = list(command_prefix)
        self.config_path = workdir / f"{config['agent_id']}.yaml"
        self.port_file = Path(config["port_file"])
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{config['agent_id']}.log"
        self.control_port = 0
        self.serving_port = 0

    def start(self, *, timeout: float = 60.0) -> AgentProcess:
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.port_file.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *self.command_prefix,
                    sys.executable,
                    "-c",
                    "from edgewave_agent.cli import main; main()",
                    "serve",
                    "--config",
                    str(self.config_path),
                    "--log-level",
                    "WARNING",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while not self.port_file.exists():
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"agent did not bind its ports; log:\n{self.log()}")
            time.sleep(0.05)
        ports = json.loads(self.port_file.read_text())
        self.control_port, self.serving_port = ports["control"], ports["serving"]
        self.wait_serving(deadline=deadline)
        return self

    def _check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"agent exited with {self.process.returncode}; log:\n{self.log()}")

    def wait_serving(self, *, deadline: float) -> None:
        target = f"localhost:{self.serving_port or self.control_port}"
        if self.config.get("insecure"):
            channel = grpc.insecure_channel(target)
        else:
            ca = Path(self.config["tls"]["client_ca_file"]).read_bytes()
            channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(ca))
        with channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                self._check_alive()
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"agent never reported SERVING; log:\n{self.log()}")
                time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as in a power cut of the process."""
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

    @property
    def control(self) -> str:
        return f"localhost:{self.control_port}"

    @property
    def serving(self) -> str:
        return f"localhost:{self.serving_port}"


class BackgroundLoop:
    """An event loop on its own thread, so synchronous tests and benchmarks can host many
    in-process agents (`AgentServer`s) the way one process would in production."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run `coroutine` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and close it (an unclosed loop leaks its self-pipe sockets)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()
