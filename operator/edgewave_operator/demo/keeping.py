"""`--keep` and `--down`: what a kept demo leaves running, recorded so it can be stopped later.

The state directory holds the control plane (`devcluster.background`) and `demo.json`: the
operator's, agents' and traffic process's pids with start times (so a recycled pid is never
signalled), the kubeconfig, the CA and the agents' serving addresses.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pydantic

from edgewave_operator.demo import constants
from edgewave_operator.devcluster import background, clusters, locations, processes
from edgewave_operator.devcluster import states as cluster_states

STATE_FILE = "demo.json"
DEMO_DIR = "demo"


class Recorded(pydantic.BaseModel):
    """What `keep` leaves running, for `down` and for people (kubeconfig, endpoints)."""

    kubeconfig: Path
    ca_file: Path
    workdir: Path
    processes: list[cluster_states.RecordedProcess]
    agents: dict[str, str]
    """Agent name -> serving address (inference, TLS)."""


def down(state_dir: Path, *, say: constants.Say) -> bool:
    """Stop what `run(keep=True)` left in `state_dir`; False if nothing was recorded."""
    stopped = stop_processes(state_dir, say=say)
    state = background.down(state_dir=state_dir)
    if state is not None:
        say(f"stopped the control plane at {state.server}")
        stopped = True
    return stopped


def stop_processes(state_dir: Path, *, say: constants.Say) -> bool:
    """Stop the operator, agents and traffic a kept demo recorded in `state_dir`, leaving
    the control plane; False if no demo was recorded there."""
    path = state_dir / STATE_FILE
    if not path.exists():
        return False
    recorded = Recorded.model_validate_json(path.read_text())
    processes.stop([as_child(p) for p in recorded.processes])
    say(f"stopped the operator, {len(recorded.agents)} agents and the traffic process")
    shutil.rmtree(recorded.workdir, ignore_errors=True)
    path.unlink()
    return True


def running(state_dir: Path) -> Recorded | None:
    """The kept demo recorded in `state_dir`, if any of its processes is still alive."""
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    recorded = Recorded.model_validate_json(path.read_text())
    alive = any(not processes.is_gone(as_child(p)) for p in recorded.processes)
    return recorded if alive else None


def as_recorded(started: processes.Child) -> cluster_states.RecordedProcess:
    return cluster_states.RecordedProcess(
        name=started.name,
        pid=started.identity.pid,
        start_time=started.identity.start_time,
        log_path=started.log_path,
    )


def as_child(entry: cluster_states.RecordedProcess) -> processes.Child:
    """The recorded process, found again by pid and start time (never a recycled pid)."""
    return processes.Child(
        name=entry.name,
        identity=processes.Identity(pid=entry.pid, start_time=entry.start_time),
        log_path=entry.log_path,
    )


def record(path: Path, kept: Recorded) -> None:
    """Write `kept` to `path` atomically."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(kept.model_dump_json(indent=2))
    tmp.replace(path)


def show_kept(cluster: clusters.DevCluster, *, state_dir: Path, say: constants.Say) -> None:
    """How to use what was kept, and how to stop it."""
    say("left running; explore it with kubectl:")
    for line in cluster_states.shell_exports(
        kubeconfig=cluster.kubeconfig, bin_dir=cluster.bin_dir
    ).splitlines():
        say(f"    {line}")
    say("    kubectl get modelrollouts,edgeagents")
    say(f"    edgewave dashboard   # live page at {dashboard_url()}")
    say(f"stop everything with `edgewave demo --down{state_flag(state_dir)}`")


def dashboard_url() -> str:
    """Where `edgewave dashboard` serves by default."""
    from edgewave_operator.commands import dashboard

    return f"http://{dashboard.DEFAULT_ADDRESS}:{dashboard.DEFAULT_PORT}/"


def state_flag(state_dir: Path) -> str:
    """` --state-dir DIR` unless `state_dir` is the default."""
    default = locations.default_state_dir().resolve()
    return "" if state_dir.resolve() == default else f" --state-dir {state_dir}"
