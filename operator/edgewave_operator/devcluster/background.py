"""A detached dev control plane, recorded in a state directory (`edgewave dev-cluster up`).

The state directory holds `state.json` (pids with start times, ports, kubeconfig), the
control plane's work directory and a lock, so that two `up`s on one directory never start
two control planes and `down` stops exactly what `up` started. Different state directories
give independent control planes.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydantic

from edgewave_api.errors import PermanentError
from edgewave_operator.devcluster import clusters, processes, states

STATE_FILE = "state.json"
WORKDIR = "cluster"


@dataclass(frozen=True)
class Up:
    state: states.ClusterState
    started: bool  # False: it was already running


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def read(state_dir: Path) -> states.ClusterState | None:
    """The recorded control plane, or None if nothing is recorded."""
    path = state_path(state_dir)
    try:
        return states.ClusterState.model_validate_json(path.read_text())
    except FileNotFoundError:
        return None
    except pydantic.ValidationError as error:
        raise PermanentError(
            f"{path} is not a dev-cluster state file ({error.error_count()} errors); "
            "stop its processes by hand if any and delete the file"
        ) from error


def running(state_dir: Path) -> states.ClusterState | None:
    """The recorded control plane if all of its processes are still alive."""
    state = read(state_dir)
    if state is None or not clusters.DevCluster.attach(state).is_running():
        return None
    return state


def up(*, state_dir: Path, bin_dir: Path | None = None) -> Up:
    """Starts a detached control plane unless one recorded in `state_dir` is running."""
    with _locked(state_dir):
        if (state := running(state_dir)) is not None:
            return Up(state=state, started=False)
        _stop_recorded(state_dir)  # a half-dead one: clear it away first
        with processes.sigterm_interrupts():
            cluster = clusters.DevCluster.start(
                workdir=state_dir / WORKDIR, bin_dir=bin_dir, detached=True
            )
            try:
                state = cluster.state()
                tmp = state_path(state_dir).with_suffix(".tmp")
                tmp.write_text(state.model_dump_json(indent=2))
                tmp.replace(state_path(state_dir))
            except BaseException:
                cluster.stop()
                raise
        return Up(state=state, started=True)


def down(*, state_dir: Path) -> states.ClusterState | None:
    """Stops the recorded control plane and removes its files; None if none was recorded."""
    with _locked(state_dir):
        return _stop_recorded(state_dir)


def _stop_recorded(state_dir: Path) -> states.ClusterState | None:
    state = read(state_dir)
    if state is not None:
        clusters.DevCluster.attach(state).stop()
        state_path(state_dir).unlink()
    shutil.rmtree(state_dir / WORKDIR, ignore_errors=True)
    return state


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
