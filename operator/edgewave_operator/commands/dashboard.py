"""`edgewave dashboard`: a local web page of the rollouts, live from the API server.

Read-only unless `--allow-actions` (then the page offers pause and resume, through the
same `lifecycle` functions as the CLI). Binds 127.0.0.1 by default; a non-loopback address
must be given with `--address`, prints a warning, and never allows actions.
"""

from __future__ import annotations

from typing import Annotated

import typer

from edgewave_operator.commands import common

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 8480


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)


def dashboard(
    *,
    address: Annotated[
        str | None,
        typer.Option(
            help=f"Address to listen on (default {DEFAULT_ADDRESS}; loopback only "
            "unless given here)."
        ),
    ] = None,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port).")
    ] = DEFAULT_PORT,
    allow_actions: Annotated[
        bool, typer.Option("--allow-actions", help="Offer pause/resume buttons on the page.")
    ] = False,
    kubeconfig: common.KubeconfigOption = None,
) -> None:
    """Serve a live web page of the rollouts, their waves, regions, agents and events."""
    import asyncio
    import sys

    from edgewave_operator.dashboard import guards, running

    warning = guards.check_address(
        address or DEFAULT_ADDRESS, explicit=address is not None, allow_actions=allow_actions
    )
    if warning:
        print(warning, file=sys.stderr, flush=True)
    options = running.Options(
        address=address or DEFAULT_ADDRESS,
        port=port,
        allow_actions=allow_actions,
        kubeconfig=kubeconfig,
    )
    asyncio.run(running.serve(options, say=lambda line: print(line, flush=True)))
