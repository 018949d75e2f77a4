"""The detached control plane's state survives a round trip through its file."""

from __future__ import annotations

import subprocess
from pathlib import Path

from edgewave_operator.devcluster import states


def test_state_round_trips_through_json() -> None:
    state = states.ClusterState(
        server="https://127.0.0.1:1",
        kubeconfig=Path("/s/cluster/kubeconfig"),
        bin_dir=Path("/bin"),
        workdir=Path("/s/cluster"),
        etcd_client_port=1,
        etcd_peer_port=2,
        apiserver_port=3,
        processes=(
            states.RecordedProcess(name="etcd", pid=10, start_time=99, log_path=Path("/l")),
        ),
    )
    assert states.ClusterState.model_validate_json(state.model_dump_json()) == state


def test_shell_exports_survive_spaces_in_paths() -> None:
    lines = states.shell_exports(kubeconfig=Path("/a b/kubeconfig"), bin_dir=Path("/c d/bin"))
    script = f'PATH=/usr/bin:/bin; {lines.replace(chr(10), "; ")}; echo "$KUBECONFIG"; echo "$PATH"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    kubeconfig, path = out.stdout.splitlines()
    assert kubeconfig == "/a b/kubeconfig"
    assert path == "/c d/bin:/usr/bin:/bin"
