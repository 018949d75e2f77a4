"""`edgewave status ROLLOUT`: where a rollout stands, wave by wave, region by region.

ROLLOUT is a ModelRollout's name in the cluster (`-n` for its namespace). Shows the phase,
conditions, each wave's counts and gate measurements (samples, p95 latency, error rate),
regions, exclusions, engines and, per agent, which version it serves. `-o json|yaml` gives
the status and agents as a document. A missing rollout is one line and exit code 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgewave_operator.commands import common

if TYPE_CHECKING:
    from edgewave_api import edgeagent, modelrollout


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def status(
    rollout: Annotated[str, typer.Argument(help="The ModelRollout's name.")],
    *,
    namespace: common.NamespaceOption = None,
    output: common.OutputOption = common.Output.TABLE,
    kubeconfig: common.KubeconfigOption = None,
) -> None:
    """Show a rollout's waves, regions, agents and health-gate numbers."""
    import asyncio
    import datetime

    from edgewave_operator import reading
    from edgewave_operator.views import outputs, rollouts

    where = namespace or reading.default_namespace(kubeconfig)
    found, agents, waves = asyncio.run(_read(kubeconfig, name=rollout, namespace=where))
    lines = rollouts.agent_lines(found, agents, waves=waves)
    chosen = outputs.Format(output.value)
    if chosen.machine:
        typer.echo(outputs.dump(rollouts.document(found, lines), output=chosen))
        return
    now = datetime.datetime.now(datetime.UTC)
    outputs.console().print(rollouts.render(found, lines, now=now))


async def _read(
    kubeconfig: Path | None, *, name: str, namespace: str
) -> tuple[modelrollout.ModelRollout, list[edgeagent.EdgeAgent], dict[str, str]]:
    from edgewave_operator import reading
    from edgewave_operator.views import dryruns

    async with reading.Cluster(kubeconfig) as cluster:
        found = await cluster.rollout(name, namespace=namespace)
        agents = await cluster.agents()
        policies = await cluster.policies()
    return found, agents, dryruns.waves_of(rollout=found, agents=agents, policies=policies)
