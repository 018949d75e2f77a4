"""The demo end to end, as `make demo` runs it (short mode), judged by what it leaves behind.

`edgewave demo --short --keep` runs once for this module: control plane, operator and six
agents as real processes, two rollouts, the GPU-fleet plan and an inference. Kept running,
its outcome is checked from the outside: the rollouts' status in the API server, what the
agents themselves say they hold (Describe on their TLS port), and a client's own inference
call. `edgewave demo --down` must then leave no process behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from edgewave_operator.demo import keeping
from edgewave_operator.devcluster import background, processes
from edgewave_operator.devcluster import states as cluster_states
from edgewave_proto.agent.v1 import agent_pb2, agent_pb2_grpc

DEMO_TIMEOUT = 540
# The first test also waits for the module's demo run (pytest-timeout counts fixture setup).
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(DEMO_TIMEOUT + 120)]
ROOT = Path(__file__).resolve().parents[1]
EDGEWAVE = Path(sys.executable).with_name("edgewave")


@dataclass(frozen=True)
class Kept:
    output: str
    state_dir: Path
    recorded: keeping.Recorded
    cluster: cluster_states.ClusterState

    def kubectl(self, *args: str) -> Any:
        result = subprocess.run(
            [
                str(self.cluster.bin_dir / "kubectl"),
                f"--kubeconfig={self.cluster.kubeconfig}",
                *args,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return json.loads(result.stdout)


def _edgewave(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["EDGEWAVE_DEMO_SHORT"] = "1"
    return subprocess.run(
        [str(EDGEWAVE), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kept]:
    state_dir = tmp_path_factory.mktemp("demo-state")
    try:
        result = _edgewave("demo", "--keep", "--state-dir", str(state_dir), timeout=DEMO_TIMEOUT)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
        recorded = keeping.Recorded.model_validate_json(
            (state_dir / keeping.STATE_FILE).read_text()
        )
        cluster = background.read(state_dir)
        assert cluster is not None
        yield Kept(output=output, state_dir=state_dir, recorded=recorded, cluster=cluster)
    finally:
        _edgewave("demo", "--down", "--state-dir", str(state_dir), timeout=120)


def test_the_demo_shows_every_step_and_the_inference_answer(demo: Kept) -> None:
    assert "[1/10] local control plane started" in demo.output
    assert "six edge agents started" in demo.output
    assert "admission: a rollout of classifier-eu to us-east is refused" in demo.output
    refusal = next(line for line in demo.output.splitlines() if line.startswith("admission:"))
    assert "eu-only" in refusal
    assert "[10/10] inference: edge-eu-west-1 answered classifier 1.1.0: class" in demo.output
    # The GPU-fleet dry runs: real central builds, on-agent builds for the Jetsons.
    assert "2 central builds + 3 on agents" in demo.output
    assert "4 excluded, 2 central builds + 2 on agents" in demo.output
    assert "export KUBECONFIG=" in demo.output
    # The manual gate on us-east, promoted as a person would (once per version).
    assert demo.output.count("wave us-east awaits approval; edgewave rollout promote") == 2
    assert demo.output.count("rollout default/classifier-global: approved wave us-east") == 2


def _listening_tcp_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state held by `pid`, from /proc (its own socket inodes)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_the_agents_dial_the_operators_gateway_and_open_no_control_port(demo: Kept) -> None:
    assert "dialling the operator's gateway" in demo.output
    header = next(line for line in demo.output.splitlines() if line.startswith("NAME "))
    assert "CONNECTED" in header.split() and "GATEWAY" in header.split()
    agents = demo.kubectl("get", "edgeagents", "-o", "json")["items"]
    assert len(agents) == 6
    for agent in agents:
        assert "endpoint" not in agent["spec"]
        connection = agent["status"]["connection"]
        assert (connection["connected"], connection["gateway"]) == (True, "embedded")
    # Each agent process listens on its serving (inference) port only.
    by_name = {p.name: p for p in demo.recorded.processes}
    for name, serving in demo.recorded.agents.items():
        port = int(serving.rsplit(":", 1)[1])
        assert _listening_tcp_ports(by_name[name].pid) == {port}, name


def test_both_rollouts_are_ready_at_the_version_they_ask_for(demo: Kept) -> None:
    rollouts = {
        r["metadata"]["name"]: r
        for r in demo.kubectl("get", "modelrollouts", "-n", "default", "-o", "json")["items"]
    }
    assert sorted(rollouts) == ["classifier-eu", "classifier-global"]
    for name, version, ready in (
        ("classifier-global", "1.1.0", "6/6"),
        ("classifier-eu", "1.0.0", "4/4"),
    ):
        status = rollouts[name]["status"]
        assert status["observedGeneration"] == rollouts[name]["metadata"]["generation"]
        assert status["phase"] == "Succeeded"
        assert status["currentVersion"] == version
        assert status["ready"] == ready
        conditions = {c["type"]: c["status"] for c in status["conditions"]}
        assert conditions["Ready"] == "True"
        assert all(
            wave["phase"] == "Succeeded" and wave["gate"]["passed"] for wave in status["waves"]
        )
    eu = rollouts["classifier-eu"]["status"]
    assert eu["totals"]["excluded"] == 2
    assert {e["reason"] for e in eu["exclusions"]} == {"RegionNotAllowed"}
    assert rollouts["classifier-global"]["status"]["previousVersion"] == "1.0.0"
    control = rollouts["classifier-global"]["status"]["control"]
    assert control["approvedWaves"] == ["us-east"]
    assert control["lastRequest"]["result"] == "Applied"


def _describe(serving: str, *, ca_file: Path) -> Any:
    credentials = grpc.ssl_channel_credentials(ca_file.read_bytes())
    with grpc.secure_channel(serving, credentials) as channel:
        return agent_pb2_grpc.AgentServiceStub(channel).Describe(
            agent_pb2.DescribeRequest(), timeout=10
        )


def test_the_eu_only_model_is_on_eu_agents_and_absent_from_us_east(demo: Kept) -> None:
    agents = {
        a["metadata"]["name"]: a for a in demo.kubectl("get", "edgeagents", "-o", "json")["items"]
    }
    assert len(demo.recorded.agents) == 6
    for name, serving in demo.recorded.agents.items():
        region = agents[name]["spec"]["region"]
        held = {(m["name"], m["state"]) for m in agents[name]["status"]["models"]}
        # The serving port (no client certificate) shows what is served, not where: the
        # region the agent reports is what the operator read on its control port.
        described = _describe(serving, ca_file=demo.recorded.ca_file)
        on_agent = {m.model: m.active_version for m in described.models}
        assert described.agent_id == name and not described.region
        assert agents[name]["status"]["reportedRegion"] == region
        assert on_agent["classifier"] == "1.1.0"
        if region == "us-east":
            assert "classifier-eu" not in on_agent, f"{name} holds the EU-only model"
            assert not any(model == "classifier-eu" for model, _ in held)
        else:
            assert on_agent["classifier-eu"] == "1.0.0"
            assert ("classifier-eu", "Active") in held
        assert agents[name]["status"].get("gpu") is None, "a CPU machine reports no GPU"


def test_a_client_gets_answers_over_tls_and_us_east_refuses_the_eu_model(demo: Kept) -> None:
    def infer(agent: str, model: str, shape: tuple[int, ...]) -> tuple[str, Any]:
        client = triton.InferenceServerClient(
            url=demo.recorded.agents[agent], ssl=True, root_certificates=str(demo.recorded.ca_file)
        )
        try:
            request = triton.InferInput("input", list(shape), "FP32")
            request.set_data_from_numpy(np.full(shape, 0.5, dtype=np.float32))
            result = client.infer(model, [request])
            return str(result.get_response().model_version), result.as_numpy("probabilities")
        finally:
            client.close()

    version, probabilities = infer("edge-eu-central-2", "classifier", (2, 3, 8, 8))
    assert version == "1.1.0"
    assert probabilities.shape == (2, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    version, _ = infer("edge-eu-west-2", "classifier-eu", (1, 3, 32, 32))
    assert version == "1.0.0"
    with pytest.raises(InferenceServerException, match="not active on this agent"):
        infer("edge-us-east-2", "classifier-eu", (1, 3, 32, 32))


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in command and str(os.getpid()) != entry.name:
            found.append(f"{entry.name}: {command[:160]}")
    return found


def test_down_stops_everything_and_leaves_no_process_behind(demo: Kept) -> None:
    children = [
        processes.Child(
            name=p.name,
            identity=processes.Identity(pid=p.pid, start_time=p.start_time),
            log_path=p.log_path,
        )
        for p in (*demo.recorded.processes, *demo.cluster.processes)
    ]
    assert {c.name for c in children} >= {"operator", "traffic", "etcd", "kube-apiserver"}
    assert all(not processes.is_gone(c) for c in children)
    result = _edgewave("demo", "--down", "--state-dir", str(demo.state_dir), timeout=120)
    assert result.returncode == 0, result.stderr
    assert [c.name for c in children if not processes.is_gone(c)] == []
    assert _processes_mentioning(str(demo.state_dir)) == []
    assert not (demo.state_dir / keeping.STATE_FILE).exists()
