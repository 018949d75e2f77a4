"""`edgewave agents`: the fleet as the operator last saw it (GPU, models, health, last seen).

Reads every EdgeAgent from the cluster (`--kubeconfig`, `$KUBECONFIG`); `--region` keeps
one region; `-o wide` adds zone, jurisdiction, runtimes, endpoint and agent version;
`-o json|yaml` prints `{"agents": [...]}` for scripts. Exit code 1 with one line on errors.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgewave_operator.commands import common

if TYPE_CHECKING:
    from edgewave_api import edgeagent


class Output(enum.StrEnum):
    TABLE = "table"
    WIDE = "wide"
    JSON = "json"
    YAML = "yaml"


def register(app: typer.Typer) -> None:
    app.command("agents")(agents)


def agents(
    *,
    region: Annotated[str | None, typer.Option(help="Only agents in this region.")] = None,
    output: Annotated[
        Output,
        typer.Option("--output", "-o", help="table, wide, json or yaml.", case_sensitive=False),
    ] = Output.TABLE,
    kubeconfig: common.KubeconfigOption = None,
) -> None:
    """List edge agents: region, GPU, compute capability, models, health, last seen."""
    import asyncio
    import datetime

    from edgewave_operator.views import agents as agent_views
    from edgewave_operator.views import outputs

    chosen = outputs.Format(output.value)
    found = agent_views.rows(asyncio.run(_read(kubeconfig)), region=region)
    if chosen.machine:
        typer.echo(outputs.dump(agent_views.document(found), output=chosen))
        return
    console = outputs.console()
    if not found:
        console.print(f"no EdgeAgents{f' in region {region}' if region else ''}")
        return
    now = datetime.datetime.now(datetime.UTC)
    console.print(agent_views.table(found, now=now, wide=chosen is outputs.Format.WIDE))


async def _read(kubeconfig: Path | None) -> list[edgeagent.EdgeAgent]:
    from edgewave_operator import reading

    async with reading.Cluster(kubeconfig) as cluster:
        return await cluster.agents()
