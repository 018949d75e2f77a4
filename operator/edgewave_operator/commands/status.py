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
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", "-w", help="Redraw live until Ctrl-C (piped: until the rollout settles)."
        ),
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between redraws.", min=0.2)] = 2.0,
    watch_seconds: Annotated[
        float, typer.Option(help="Stop watching after this long.", min=1, max=86400)
    ] = 3600.0,
) -> None:
    """Show a rollout's waves, regions, agents and health-gate numbers."""
    import asyncio
    import contextlib
    import datetime

    from edgewave_operator import reading
    from edgewave_operator.views import outputs, rollouts

    where = namespace or reading.default_namespace(kubeconfig)
    if watch:
        limit = max(1, int(watch_seconds / interval))
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends the watch, quietly
            asyncio.run(_watch(kubeconfig, name=rollout, namespace=where, interval=interval,
                               limit=limit))  # fmt: skip
        return
    found, agents, waves = asyncio.run(_read(kubeconfig, name=rollout, namespace=where))
    lines = rollouts.agent_lines(found, agents, waves=waves)
    chosen = outputs.Format(output.value)
    if chosen.machine:
        typer.echo(outputs.dump(rollouts.document(found, lines), output=chosen))
        return
    now = datetime.datetime.now(datetime.UTC)
    outputs.console().print(rollouts.render(found, lines, now=now))


async def _watch(
    kubeconfig: Path | None, *, name: str, namespace: str, interval: float, limit: int
) -> None:
    import datetime
    import json

    from edgewave_api import modelrollout
    from edgewave_operator.views import outputs, rollouts, watching

    async def read() -> watching.Frame:
        found, agents, waves = await _read(kubeconfig, name=name, namespace=namespace)
        lines = rollouts.agent_lines(found, agents, waves=waves)
        now = datetime.datetime.now(datetime.UTC)
        status = found.status
        phase = status.phase if status else None
        settled = phase in modelrollout.TERMINAL_PHASES
        key = json.dumps(rollouts.document(found, lines), sort_keys=True, default=str)
        return watching.Frame(view=rollouts.render(found, lines, now=now), key=key,
                              settled=settled)  # fmt: skip

    await watching.watch(read, console=outputs.console(), interval=interval, limit=limit)


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
