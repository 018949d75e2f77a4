"""Starting and stopping never leaves a process behind: `down`, Ctrl-C/SIGTERM, SIGKILL.

Each test starts its own control plane (a few seconds each), apart from the shared one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgewave_operator.demo import keeping
from edgewave_operator.devcluster import background, clusters, commandlines, ports, processes
from edgewave_operator.devcluster import states as cluster_states

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EDGEWAVE = Path(sys.executable).with_name("edgewave")

CONFTEST = Path(__file__).parents[2] / "conftest.py"
# A pytest session that owns a control plane through the shared `kube` fixture: it prints
# the control plane's processes, then waits to be interrupted or killed.
HOLDING_TEST = textwrap.dedent(
    """
    import faulthandler, json, signal, time

    # A hung teardown can be asked where it is (the interrupt test does so on a timeout).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # Ctrl-C as at a terminal: a suite started in the background (`make test &`, CI) hands
    # its children SIGINT ignored, and Python then installs no KeyboardInterrupt for it.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def test_hold(kube):
        print(json.dumps({"pids": kube.pids}), flush=True)
        time.sleep(600)
    """
)


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)
    return env


def _edgewave(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EDGEWAVE), *args],
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=120,
        check=False,
    )


def _running(pids: list[int]) -> list[int]:
    return [pid for pid in pids if processes.identity_of(pid) is not None]


def _eventually_none_running(pids: list[int], *, timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := _running(pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def _start_owner(tmp_path: Path) -> tuple[subprocess.Popen[str], list[int]]:
    (tmp_path / "conftest.py").write_text(CONFTEST.read_text())
    (tmp_path / "test_hold.py").write_text(HOLDING_TEST)
    owner = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-s", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_environment(),
    )
    assert owner.stdout is not None
    deadline = time.monotonic() + 90
    with selectors.DefaultSelector() as selector:
        selector.register(owner.stdout, selectors.EVENT_READ)
        while selector.select(timeout=max(0.0, deadline - time.monotonic())):
            line = owner.stdout.readline()
            if not line:
                break
            if line.startswith("{"):
                return owner, list(json.loads(line)["pids"])
    _finish(owner)
    pytest.fail("the owning pytest session never reported its control plane")


def _finish(owner: subprocess.Popen[str]) -> None:
    if owner.poll() is None:
        owner.kill()
    owner.communicate(timeout=60)


def test_up_prints_exports_for_a_ready_server_and_down_leaves_nothing(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    try:
        script = (
            f'eval "$({EDGEWAVE} dev-cluster up --state-dir {state_dir})" && '
            "command -v kubectl && kubectl get --raw /readyz"
        )
        shell = subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            text=True,
            env=_environment(),
            timeout=120,
            check=False,
        )
        assert shell.returncode == 0, shell.stderr
        kubectl_path, readyz = shell.stdout.split()
        assert readyz == "ok"
        state = background.read(state_dir)
        assert state is not None
        assert Path(kubectl_path) == state.bin_dir / "kubectl"
        pids = [p.pid for p in state.processes]
        assert _running(pids) == pids

        again = _edgewave("dev-cluster", "up", "--state-dir", str(state_dir))
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stderr
        assert f"export KUBECONFIG={state.kubeconfig}" in again.stdout
        assert background.read(state_dir) == state

        down = _edgewave("dev-cluster", "down", "--state-dir", str(state_dir))
        assert down.returncode == 0, down.stderr
        assert _running(pids) == []
        assert background.read(state_dir) is None
        assert not state.workdir.exists()
        status = _edgewave("dev-cluster", "status", "--state-dir", str(state_dir))
        assert status.returncode == 1
        again_down = _edgewave("dev-cluster", "down", "--state-dir", str(state_dir))
        assert "nothing to stop" in again_down.stderr
    finally:
        background.down(state_dir=state_dir)


def test_sigkill_of_the_owning_pytest_leaves_no_orphan(tmp_path: Path) -> None:
    owner, pids = _start_owner(tmp_path)
    try:
        assert _running(pids) == pids
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=30)
        assert _eventually_none_running(pids) == []
    finally:
        _finish(owner)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupted_pytest_stops_its_control_plane_before_it_exits(
    tmp_path: Path, signum: signal.Signals
) -> None:
    owner, pids = _start_owner(tmp_path)
    try:
        assert _running(pids) == pids
        owner.send_signal(signum)
        try:
            output, _ = owner.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            owner.send_signal(signal.SIGUSR1)  # every thread's stack, then give up
            time.sleep(2)
            owner.kill()
            stuck, _ = owner.communicate(timeout=30)
            pytest.fail(
                f"the interrupted session did not exit in 60 s; it was at:\n{stuck[-6000:]}"
            )
        assert "KeyboardInterrupt" in output
        # The session's teardown stopped and reaped the processes: nothing to wait for.
        assert _running(pids) == []
    finally:
        _finish(owner)


def test_a_port_taken_before_the_server_binds_it_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_allocate = ports.allocate
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = int(squatter.getsockname()[1])
        offered: list[commandlines.Ports] = []

        def allocate() -> commandlines.Ports:
            chosen = real_allocate()
            if not offered:  # the first choice loses the race for the API server's port
                chosen = dataclasses.replace(chosen, apiserver=taken)
            offered.append(chosen)
            return chosen

        monkeypatch.setattr(ports, "allocate", allocate)
        with clusters.DevCluster.start() as cluster:
            assert len(offered) == 2
            assert cluster.server == f"https://127.0.0.1:{offered[1].apiserver}"
            assert cluster.kubectl("get", "--raw", "/readyz").stdout == "ok"


def test_down_also_stops_a_demo_kept_on_that_control_plane(tmp_path: Path) -> None:
    """`edgewave demo --keep` on a control plane from `up` records its processes beside it;
    `dev-cluster down` must stop them too, or they would outlive their API server."""
    state_dir = tmp_path / "state"
    agent: subprocess.Popen[bytes] | None = None
    try:
        up = _edgewave("dev-cluster", "up", "--state-dir", str(state_dir))
        assert up.returncode == 0, up.stderr
        state = background.read(state_dir)
        assert state is not None
        # Stands in for a kept demo's agent: a real process in its own group, as the demo starts.
        agent = subprocess.Popen(["sleep", "300"], start_new_session=True)
        identity = processes.identity_of(agent.pid)
        assert identity is not None
        keeping.record(
            state_dir / keeping.STATE_FILE,
            keeping.Recorded(
                kubeconfig=state.kubeconfig,
                ca_file=tmp_path / "ca.pem",
                workdir=tmp_path / "demo",
                processes=[
                    cluster_states.RecordedProcess(
                        name="edge-eu-west-1",
                        pid=identity.pid,
                        start_time=identity.start_time,
                        log_path=tmp_path / "agent.log",
                    )
                ],
                agents={"edge-eu-west-1": "127.0.0.1:8001"},
            ),
        )

        down = _edgewave("dev-cluster", "down", "--state-dir", str(state_dir))

        assert down.returncode == 0, down.stderr
        assert "stopped the operator, 1 agents and the traffic process" in down.stderr
        assert agent.wait(timeout=15) != 0  # stopped by a signal, not finished
        assert not (state_dir / keeping.STATE_FILE).exists()
        assert _running([p.pid for p in state.processes]) == []
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait()
        background.down(state_dir=state_dir)
