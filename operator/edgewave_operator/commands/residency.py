"""`edgewave residency report`: where each rollout's model versions are, and what allowed them.

The evidence a regulated team hands an auditor: read from the cluster (rollouts, policies,
and what each EdgeAgent reports it holds), judged by the same rules admission enforces.
A table by default; `-o json|yaml` for scripts. Exit code 0 when every placement is
allowed, 3 when any is not (a model awaiting eviction, or placed behind the operator's
back), 1 on errors.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from edgewave_operator.admission import reports

NON_COMPLIANT_EXIT = 3
PIPE_WIDTH = 240


class Output(enum.StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        name="residency",
        help="Data residency: where models are, and which policy allowed them.",
        no_args_is_help=True,
    )
    group.command("report")(report)
    app.add_typer(group, name="residency")


def report(
    *,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace", "-n", help="Only rollouts in this namespace (default: every namespace)."
        ),
    ] = None,
    output: Annotated[
        Output, typer.Option("--output", "-o", help="table, json or yaml.", case_sensitive=False)
    ] = Output.TABLE,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            help="Kubeconfig to use (default: $KUBECONFIG, or in-cluster credentials).",
            envvar="EDGEWAVE_KUBECONFIG",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Per rollout: each version's regions and agents, and the rules that allowed them."""
    import asyncio

    found = asyncio.run(_gather(kubeconfig=kubeconfig, namespace=namespace))
    _print(found, output=output)
    if not all(r.compliant for r in found):
        raise typer.Exit(NON_COMPLIANT_EXIT)


async def _gather(*, kubeconfig: Path | None, namespace: str | None) -> list[reports.RolloutReport]:
    from kubernetes_asyncio import client, config
    from pydantic import ValidationError

    from edgewave_api import meta, modelrollout
    from edgewave_api.errors import PermanentError
    from edgewave_operator.admission import gathering, reports
    from edgewave_operator.kube import clients, failures

    try:
        api = await clients.connect(kubeconfig)
    except config.ConfigException as error:
        raise PermanentError(f"cannot use the kubeconfig: {error}; check KUBECONFIG") from None
    async with api:
        custom = client.CustomObjectsApi(api)
        if namespace is None:
            listing = custom.list_cluster_custom_object(meta.GROUP, meta.VERSION, "modelrollouts")
        else:
            listing = custom.list_namespaced_custom_object(
                meta.GROUP, meta.VERSION, namespace, "modelrollouts"
            )
        try:
            found = await failures.call(listing, doing="listing modelrollouts")
            rollouts = [modelrollout.ModelRollout.model_validate(item) for item in found["items"]]
            policies = await gathering.policies(api)
            agents = await gathering.agents(api)
        except ValidationError as error:
            raise PermanentError(
                f"an Edgewave object in the cluster does not match this CLI's API version "
                f"({error.errors()[0]['loc']}: {error.errors()[0]['msg']}); use the CLI "
                "that matches the installed CRDs"
            ) from None
    return reports.build(rollouts=rollouts, policies=policies, agents=agents)


def _print(found: list[reports.RolloutReport], *, output: Output) -> None:
    if output is Output.JSON:
        import json

        typer.echo(json.dumps([r.as_dict() for r in found], indent=2))
        return
    if output is Output.YAML:
        from edgewave_api import kubeyaml

        typer.echo(kubeyaml.dump([r.as_dict() for r in found]), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    from edgewave_operator.admission import reports

    if not found:
        typer.echo("no ModelRollouts found")
        return
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in reports.TABLE_COLUMNS:
        table.add_column(column, overflow="fold")
    for row in reports.rows(found):
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:
        console = Console(width=PIPE_WIDTH)  # piped: keep one line per placement
    console.print(table)
