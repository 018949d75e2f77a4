"""`edgewave demo` (what `make demo` runs): the whole product on one machine, in a few minutes.

Starts the local control plane, installs the CRDs, starts the operator and six edge agents
in three regions, generates small ONNX models, applies the two rollouts of docs/examples
(three waves across all regions; EU-only under a ResidencyPolicy), shows their progress
live, upgrades one, shows what the same rollouts would do on a GPU fleet
(`edgewave plan ... --fleet docs/cli/fleet.yaml`), and asks an agent for an inference.
Then it stops everything; `--keep` leaves it running (`--down` stops it later). `--short`
(or EDGEWAVE_DEMO_SHORT=1) shrinks health-gate windows and pauses, for tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    *,
    keep: Annotated[
        bool,
        typer.Option(
            "--keep",
            help="Leave the control plane, operator and agents running; "
            "stop them later with `edgewave demo --down`.",
        ),
    ] = False,
    down: Annotated[
        bool, typer.Option("--down", help="Stop what `--keep` left running, and exit.")
    ] = False,
    short: Annotated[
        bool,
        typer.Option(
            "--short",
            envvar="EDGEWAVE_DEMO_SHORT",
            help="Short health-gate windows and pauses (for tests).",
        ),
    ] = False,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            help="With --keep/--down: where its state lives "
            "[default: ~/.cache/edgewave/dev-cluster].",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Run Edgewave end to end on this machine: operator, six agents, two rollouts."""
    from edgewave_operator.demo import keeping, sessions
    from edgewave_operator.devcluster import locations
    from edgewave_operator.views import outputs

    directory = (state_dir or locations.default_state_dir()).resolve()
    if down:
        if not keeping.down(directory, say=typer.echo):
            typer.echo(f"nothing recorded in {directory}; nothing to stop")
        return
    sessions.run(
        sessions.Options(keep=keep, short=short, state_dir=directory),
        say=typer.echo,
        console=outputs.console(),
    )
