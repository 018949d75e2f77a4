"""`edgewave operator run`: the Kubernetes operator (leader-elected, kopf standalone).

Settings come from `EDGEWAVE_*` environment variables (see `edgewave_operator.settings`);
the flags here override the ones people change most.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(name="operator", help="Run the Edgewave operator.", no_args_is_help=True)
    group.command("run")(run)
    app.add_typer(group, name="operator")


def run(
    kubeconfig: Annotated[
        Path | None, typer.Option(help="Kubeconfig; in-cluster credentials when unset.")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="The operator's namespace (Secrets, leader Lease).")
    ] = None,
    leader_election: Annotated[
        bool | None,
        typer.Option(
            "--leader-election/--no-leader-election",
            help="Act only while holding the leader Lease (on by default).",
        ),
    ] = None,
    insecure_agents: Annotated[
        bool | None,
        typer.Option("--insecure-agents", help="Plaintext gRPC to agents (labs only)."),
    ] = None,
) -> None:
    """Reconcile ModelRollouts and EdgeAgents until stopped (SIGTERM releases the Lease)."""
    from edgewave_operator import main
    from edgewave_operator.settings import OperatorSettings

    overrides: dict[str, Any] = {
        "kubeconfig": kubeconfig,
        "namespace": namespace,
        "leader_election": leader_election,
        "insecure_agents": insecure_agents,
    }
    # Flags given win; everything else comes from EDGEWAVE_* (read by the constructor).
    settings = OperatorSettings(**{k: v for k, v in overrides.items() if v is not None})
    code = main.run(settings)
    if code:
        raise typer.Exit(code)
