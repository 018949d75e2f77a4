"""`edgewave dev-cluster up|down|status`: a local control plane that outlives the command.

`up` prints shell lines on stdout (everything else goes to stderr), so
`eval "$(edgewave dev-cluster up)"` points kubectl at it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where the control plane's state lives [default: ~/.cache/edgewave/dev-cluster]; "
        "another directory gives another, independent control plane.",
        file_okay=False,
    ),
]


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        name="dev-cluster",
        help="A local kube-apiserver + etcd (pinned versions) for development and the demo.",
        no_args_is_help=True,
    )
    group.command("up")(up)
    group.command("down")(down)
    group.command("status")(status)
    app.add_typer(group, name="dev-cluster")


def _state_dir(option: Path | None) -> Path:
    from edgewave_operator.devcluster import locations

    return (option or locations.default_state_dir()).resolve()


def up(state_dir: StateDirOption = None) -> None:
    """Start the control plane in the background and print `export KUBECONFIG=...`."""
    from edgewave_operator.devcluster import background, states

    directory = _state_dir(state_dir)
    result = background.up(state_dir=directory)
    verb = "started" if result.started else "is already running"
    typer.echo(
        f"dev control plane {verb} at {result.state.server} (state in {directory}); "
        f"stop it with `edgewave dev-cluster down{_flag(state_dir, directory)}`",
        err=True,
    )
    typer.echo(
        states.shell_exports(kubeconfig=result.state.kubeconfig, bin_dir=result.state.bin_dir)
    )


def down(state_dir: StateDirOption = None) -> None:
    """Stop the control plane that `up` started; no process is left behind."""
    from edgewave_operator.demo import keeping
    from edgewave_operator.devcluster import background

    directory = _state_dir(state_dir)
    # A demo kept on this control plane (`edgewave demo --keep`) would outlive it otherwise.
    keeping.stop_processes(directory, say=lambda line: typer.echo(line, err=True))
    state = background.down(state_dir=directory)
    if state is None:
        typer.echo(f"no dev control plane recorded in {directory}; nothing to stop", err=True)
        return
    pids = ", ".join(f"{p.name} {p.pid}" for p in state.processes)
    typer.echo(f"dev control plane at {state.server} stopped ({pids})", err=True)


def status(state_dir: StateDirOption = None) -> None:
    """Print the exports if the control plane is running; exit 1 if it is not."""
    from edgewave_operator.devcluster import background, states

    directory = _state_dir(state_dir)
    state = background.running(directory)
    if state is None:
        typer.echo(f"no dev control plane running from {directory}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"dev control plane running at {state.server}", err=True)
    typer.echo(states.shell_exports(kubeconfig=state.kubeconfig, bin_dir=state.bin_dir))


def _flag(option: Path | None, directory: Path) -> str:
    return f" --state-dir {directory}" if option is not None else ""
