"""What a running dev control plane is: recorded so another process can find and stop it.

Pure: a pydantic model (JSON in a state file for the detached mode) and the shell lines
that point kubectl at a control plane.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pydantic


class RecordedProcess(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)

    name: str
    pid: int
    start_time: int
    log_path: Path


class ClusterState(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)

    server: str
    kubeconfig: Path
    bin_dir: Path
    workdir: Path
    etcd_client_port: int
    etcd_peer_port: int
    apiserver_port: int
    processes: tuple[RecordedProcess, ...]


def shell_exports(*, kubeconfig: Path, bin_dir: Path) -> str:
    """Lines for `eval "$(edgewave dev-cluster up)"`: the kubeconfig and the pinned kubectl."""
    return "\n".join(
        [
            f"export KUBECONFIG={shlex.quote(str(kubeconfig))}",
            f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"',
        ]
    )
