"""Health gates on real numbers: client traffic to the agents decides a wave's gate.

Real API server, real operator process, six real agents; the requests are real KServe v2
inference calls (`tritonclient.grpc`, TLS) to the agents' serving ports, from a thread of
this test, as an edge node's clients would send them. The new version is a real ONNX model
that fails on some inputs the old one served: a table lookup (`Gather`) whose index comes
from the input, so an input past the table makes ONNX Runtime refuse the request. Its
activation probe (inputs of 0.5, index 0) passes, so only the traffic can stop it.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
import tritonclient.grpc as triton
from onnx import TensorProto, helper
from tritonclient.utils import InferenceServerException

from edgewave_agent import testing

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Fleet = Any
Operators = Any
ModelFiles = Callable[[float], tuple[str, str]]
MakeRollout = Callable[..., dict[str, Any]]
Until = Callable[..., None]

GOOD = np.array([[0.0, 1.0, 2.0, 3.0]], dtype=np.float32)
BAD = np.full((1, 4), 9.0, dtype=np.float32)  # index 9 of a 4-entry table


def lookup_model(table: tuple[float, ...] = (0.5, 1.5, 2.5, 3.5)) -> bytes:
    """y[i] = table[int(x[i])]: fine for 0 <= x < 4, an ONNX Runtime error past the table."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["index"], to=TensorProto.INT64),
            helper.make_node("Gather", ["table", "index"], ["y"], axis=0),
        ],
        "lookup",
        [x],
        [y],
        [helper.make_tensor("table", TensorProto.FLOAT, [len(table)], list(table))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


@dataclasses.dataclass
class Traffic:
    """Inference requests to every agent's serving port, round-robin, on a thread.

    Every `bad_every`-th request to an agent carries an input the lookup model cannot serve
    (0: none). Requests for a model an agent does not serve yet are refused by the agent
    before they count, here and in its health window.
    """

    host: Any
    model: str
    bad_every: int = 0
    max_rounds: int = 20_000
    answered: Counter[str] = dataclasses.field(default_factory=Counter)
    failed: Counter[str] = dataclasses.field(default_factory=Counter)
    _stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        ca = str(self.host.pki.directory / "ca.pem")
        clients = {
            name: triton.InferenceServerClient(
                url=f"localhost:{agent.server.serving_port}", ssl=True, root_certificates=ca
            )
            for name, agent in self.host.agents.items()
        }
        sent: Counter[str] = Counter()
        try:
            for _ in range(self.max_rounds):
                if self._stop.is_set():
                    return
                for name, client in clients.items():
                    sent[name] += 1
                    bad = bool(self.bad_every) and sent[name] % self.bad_every == 0
                    self._ask(name, client, BAD if bad else GOOD)
                self._stop.wait(0.02)
        finally:
            for client in clients.values():
                client.close()

    def _ask(self, name: str, client: Any, data: np.ndarray) -> None:
        request = triton.InferInput("x", list(data.shape), "FP32")
        request.set_data_from_numpy(data)
        try:
            client.infer(self.model, [request], client_timeout=10)
        except InferenceServerException as error:
            # Not served there yet (or any more): the agent does not count it either.
            if "not active" not in str(error) and "not loaded" not in str(error):
                self.failed[name] += 1
            return
        self.answered[name] += 1


@pytest.fixture
def traffic(fleet: Fleet) -> Iterator[Callable[..., Traffic]]:
    # The agents run in this process: ONNX Runtime would log every refused request.
    onnxruntime.set_default_logger_severity(4)
    started: list[Traffic] = []

    def start(model: str, *, bad_every: int = 0) -> Traffic:
        made = Traffic(host=fleet.host, model=model, bad_every=bad_every)
        made.start()
        started.append(made)
        return made

    yield start
    for made in started:
        made.stop()


def _artifact(directory: Path, data: bytes) -> tuple[str, str]:
    path, digest = testing.write_artifact(directory, data)
    return path.as_uri(), digest


def _status(fleet: Fleet, name: str) -> dict[str, Any]:
    status: dict[str, Any] = fleet.get("mro", name).get("status") or {}
    return status


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


def _waves(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {wave["name"]: wave for wave in status.get("waves", [])}


TWO_WAVES = [
    {"name": "canary", "regions": ["eu-west"], "maxUnavailable": 2},
    {"name": "rest", "maxUnavailable": "100%"},
]


def test_requests_the_new_version_fails_roll_the_wave_back_with_the_gate_numbers(
    *,
    fleet: Fleet,
    operators: Operators,
    model_files: ModelFiles,
    make_rollout: MakeRollout,
    until: Until,
    traffic: Callable[..., Traffic],
    tmp_path: Path,
) -> None:
    host = fleet.host
    operators.start()
    uri, sha = model_files(21.0)  # 1.0.0: y = x * w + b, serves any input
    fleet.apply(
        make_rollout(
            "lookup", namespace=fleet.namespace, model="lookup", version="1.0.0",
            uri=uri, sha256=sha, waves=TWO_WAVES,
        )
    )  # fmt: skip
    fleet.kube.kubectl(
        "wait", "--for=condition=Ready", "mro/lookup", "-n", fleet.namespace, "--timeout=90s"
    )
    sent = traffic("lookup", bad_every=3)  # a third of the requests: an index past the table
    bad_uri, bad_sha = _artifact(tmp_path, lookup_model())
    fleet.apply(
        make_rollout(
            "lookup", namespace=fleet.namespace, model="lookup", version="2.0.0",
            uri=bad_uri, sha256=bad_sha, waves=TWO_WAVES,
            healthGate={"windowSeconds": 2, "minSamples": 10, "maxErrorRate": 0.1},
        )
    )  # fmt: skip
    until(lambda: _status(fleet, "lookup").get("phase") == "RolledBack", what="the rollback")
    sent.stop()
    status = _status(fleet, "lookup")
    degraded = _condition(status, "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "ErrorRateTooHigh", degraded
    message = str(degraded["message"])
    # The gate's numbers, in words and as [key=value] for tools.
    worded = re.search(
        r"error rate ([\d.]+) \((\d+) of (\d+) requests\) exceeds the gate's 0\.1", message
    )
    tagged = re.search(r"\[(.*)\]$", message)
    assert worded and tagged, message
    numbers = dict(item.split("=") for item in tagged[1].split(", "))
    assert set(numbers) == {"errorRate", "errors", "p95LatencyMs", "requests"}, numbers
    rate, errors, requests = (float(numbers["errorRate"]), int(numbers["errors"]),
                              int(numbers["requests"]))  # fmt: skip
    assert (int(worded[2]), int(worded[3])) == (errors, requests)
    assert requests >= 10 and rate > 0.1
    assert rate == pytest.approx(errors / requests, abs=1e-5)
    # Real numbers: the agents counted no more failures than the clients saw, and roughly
    # the third of the requests the clients sent bad (lower bound: the gate saw failures).
    assert 0 < errors <= sent.failed["ew-0"] + sent.failed["ew-1"]
    assert 0.15 < rate < 0.5
    canary = _waves(status)["canary"]
    assert canary["phase"] == "Failed"  # the wave failed its gate; the rollout rolled back
    gate = canary["gate"]
    assert gate["passed"] is False and gate["samples"] == requests
    assert gate["errorRate"] == pytest.approx(rate, abs=1e-5)
    assert _waves(status)["rest"]["phase"] == "Pending"
    # Rolled back: the canary serves 1.0.0 again; no other agent ever held 2.0.0.
    assert {a: host.agents[a].active("lookup") for a in host.agents} == dict.fromkeys(
        host.agents, "1.0.0"
    )
    assert not [
        a for a in host.agents if a[:2] != "ew" and "2.0.0" in host.agents[a].versions("lookup")
    ]
    reasons = [e["reason"] for e in fleet.events()]
    assert {"WaveFailed", "RollbackStarted", "RolledBack"} <= set(reasons)
    failed = [e for e in fleet.events() if e["reason"] == "WaveFailed"]
    assert failed and "error rate" in failed[-1]["message"], failed


def test_enough_good_requests_pass_every_gate_and_none_passes_without_them(
    *,
    fleet: Fleet,
    operators: Operators,
    make_rollout: MakeRollout,
    until: Until,
    traffic: Callable[..., Traffic],
    tmp_path: Path,
) -> None:
    host = fleet.host
    operators.start()
    uri, sha = _artifact(tmp_path, lookup_model(table=(4.0, 3.0, 2.0, 1.0)))
    fleet.apply(
        make_rollout(
            "sampled", namespace=fleet.namespace, model="sampled", version="1.0.0",
            uri=uri, sha256=sha, waves=TWO_WAVES,
            healthGate={"windowSeconds": 1, "minSamples": 10, "maxErrorRate": 0.05},
            progressDeadlineSeconds=120,
        )
    )  # fmt: skip

    def waiting_for_samples() -> bool:
        gate = _waves(_status(fleet, "sampled")).get("canary", {}).get("gate") or {}
        return "samples" in gate and "passed" not in gate

    # Without traffic the canary's gate measures and waits: no sample, no verdict, no wave 2.
    until(waiting_for_samples, what="the canary gate to wait for samples")
    status = _status(fleet, "sampled")
    assert _waves(status)["canary"]["gate"]["samples"] < 10
    assert _waves(status)["rest"]["phase"] == "Pending"
    assert not [a for a in host.agents if a[:2] != "ew" and host.agents[a].versions("sampled")]
    assert "WavePassed" not in [e["reason"] for e in fleet.events()]
    sent = traffic("sampled")
    fleet.kube.kubectl(
        "wait", "--for=condition=Ready", "mro/sampled", "-n", fleet.namespace, "--timeout=120s"
    )
    sent.stop()
    status = _status(fleet, "sampled")
    assert status["phase"] == "Succeeded"
    for name, wave in _waves(status).items():
        gate = wave["gate"]
        assert gate["passed"] is True, (name, gate)
        assert gate["samples"] >= 10 and gate["errorRate"] == 0, (name, gate)
    passed = [e["message"] for e in fleet.events() if e["reason"] == "WavePassed"]
    assert len(passed) == 2
    for line in passed:
        found = re.search(r"health gate passed: (\d+) requests, error rate 0\.000", line)
        assert found and int(found[1]) >= 10, line
    assert not sent.failed, sent.failed
    assert all(a.active("sampled") == "1.0.0" for a in host.agents.values())
