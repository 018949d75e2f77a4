"""`edgewave demo` (what `make demo` runs): the whole product on one machine.

For now: start the local control plane, install the CRDs from `crds/`, show how to point
kubectl at it, and stop cleanly (or, with `--keep`, leave it running in the background
like `edgewave dev-cluster up`). Each step is a function of `run`, so later steps (the
operator, edge agents, a rollout) slot in between.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from edgewave_operator.devcluster import clusters

Say = Callable[[str], None]


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    keep: Annotated[
        bool,
        typer.Option(
            "--keep",
            help="Leave the control plane running in the background; "
            "stop it later with `edgewave dev-cluster down`.",
        ),
    ] = False,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            help="With --keep: where its state lives [default: ~/.cache/edgewave/dev-cluster].",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Start the local control plane, install the CRDs and show how to use kubectl on it."""
    from edgewave_operator.devcluster import locations

    run(
        keep=keep,
        state_dir=(state_dir or locations.default_state_dir()).resolve(),
        say=typer.echo,
    )


def run(*, keep: bool, state_dir: Path, say: Say, crds_dir: Path | None = None) -> None:
    """The demo, step by step; `say` prints one line for the person watching."""
    from edgewave_operator.devcluster import background, clusters, locations, processes

    crds = crds_dir or locations.crds_dir()
    with processes.sigterm_interrupts():
        if keep:
            result = background.up(state_dir=state_dir)
            cluster = clusters.DevCluster.attach(result.state)
            verb = "started" if result.started else "already running"
            say(f"[1/3] local control plane {verb} at {cluster.server} ({cluster.version()})")
            install_crds(cluster, crds_dir=crds, say=say)
            show_kubectl(cluster, say=say)
            say(f"left running; stop it with `edgewave dev-cluster down --state-dir {state_dir}`")
            return
        with clusters.DevCluster.start() as cluster:
            say(f"[1/3] local control plane started at {cluster.server} ({cluster.version()})")
            install_crds(cluster, crds_dir=crds, say=say)
            show_kubectl(cluster, say=say)
            say("stopping the control plane (run `make demo ARGS=--keep` to leave it running)")
        say("stopped; no process left behind")


def install_crds(cluster: clusters.DevCluster, *, crds_dir: Path, say: Say) -> list[str]:
    """Applies every `*.yaml` in `crds_dir` and waits until each CRD is Established."""
    files = sorted(crds_dir.glob("*.yaml"))
    if not files:
        say(f"[2/3] no CRDs in {crds_dir} yet (run `make generate`)")
        return []
    args = [arg for path in files for arg in ("-f", str(path))]
    # Server-side apply: generated CRDs can outgrow the client-side annotation limit.
    applied = cluster.kubectl(
        "apply", "--server-side", "--field-manager=edgewave-demo", "-o", "name", *args
    )
    names = applied.stdout.split()
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    say(f"[2/3] installed {len(names)} CRDs: {', '.join(n.split('/', 1)[1] for n in names)}")
    return names


def show_kubectl(cluster: clusters.DevCluster, *, say: Say) -> None:
    from edgewave_operator.devcluster import states

    say("[3/3] use kubectl against it (the pinned one, via PATH):")
    for line in states.shell_exports(
        kubeconfig=cluster.kubeconfig, bin_dir=cluster.bin_dir
    ).splitlines():
        say(f"    {line}")
    say("    kubectl get crds")
    crds = cluster.kubectl(
        "get", "crds", "-o", "custom-columns=NAME:.metadata.name", "--no-headers"
    )
    for name in crds.stdout.split():
        say(f"      {name}")
