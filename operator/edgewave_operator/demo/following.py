"""Following rollouts until they are Ready, as a live table (terminal) or one line per change.

Reads the ModelRollouts and EdgeAgents from the API server twice a second, as `kubectl`
would, and fails fast when a rollout fails or rolls back, or the operator process dies.
A wave awaiting approval (a manual gate) is promoted as a person would, through
`edgewave rollout promote` (`lifecycle.requesting`), and the answer is shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.live import Live

from edgewave_api import conditions, controls, edgeagent, modelrollout
from edgewave_operator import reading
from edgewave_operator.demo import constants, starting
from edgewave_operator.devcluster import clusters, processes
from edgewave_operator.kube import clients
from edgewave_operator.lifecycle import requesting
from edgewave_operator.views import progress


def _ready(rollout: modelrollout.ModelRollout, version: str) -> bool:
    status = rollout.status
    return (
        status is not None
        and status.observed_generation == rollout.metadata.generation
        and status.current_version == version
        and status.phase is modelrollout.RolloutPhase.SUCCEEDED
        and conditions.is_true(status.conditions, modelrollout.RolloutConditionType.READY)
    )


_FAILED = {modelrollout.RolloutPhase.FAILED, modelrollout.RolloutPhase.ROLLED_BACK}


def follow(
    cluster: clusters.DevCluster,
    *,
    wanted: dict[str, str],
    console: Console,
    say: constants.Say,
    timeout: float,
    operator: processes.Child,
) -> tuple[list[modelrollout.ModelRollout], list[edgeagent.EdgeAgent]]:
    """Show the rollouts' progress live until each is Ready at its wanted version."""
    return asyncio.run(
        _follow_async(
            cluster.kubeconfig,
            wanted=wanted,
            console=console,
            say=say,
            within=timeout,
            operator=operator,
        )
    )


async def _follow_async(
    kubeconfig: Path,
    *,
    wanted: dict[str, str],
    console: Console,
    say: constants.Say,
    within: float,
    operator: processes.Child,
) -> tuple[list[modelrollout.ModelRollout], list[edgeagent.EdgeAgent]]:
    deadline = time.monotonic() + within
    last: dict[str, str] = {}
    live = (
        Live(console=console, refresh_per_second=4, transient=True) if console.is_terminal else None
    )
    async with reading.Cluster(kubeconfig) as api:
        with live if live is not None else contextlib.nullcontext():
            while True:
                starting.check_alive(operator)
                rollouts = [
                    await api.rollout(name, namespace=constants.ROLLOUT_NAMESPACE)
                    for name in wanted
                ]
                agents = await api.agents()
                await _promote_waiting(kubeconfig, rollouts, say=say)
                if live is not None:
                    live.update(progress.render(rollouts, agents, now=_now()))
                else:
                    _log_changes(rollouts, last=last, say=say)
                if all(_ready(r, wanted[r.metadata.name or ""]) for r in rollouts):
                    if live is not None:  # the live view goes away: leave one line each
                        _log_changes(rollouts, last={}, say=say)
                    return rollouts, agents
                failed = [
                    r
                    for r in rollouts
                    if r.status is not None
                    and r.status.phase in _FAILED
                    and r.status.current_version == wanted[r.metadata.name or ""]
                ]
                if failed:
                    status = failed[0].status
                    assert status is not None
                    raise constants.DemoFailed(
                        f"rollout {failed[0].metadata.name} ended {status.phase}: "
                        f"{status.message}; operator log: {operator.log_path}"
                    )
                if time.monotonic() > deadline:
                    summary = "; ".join(
                        f"{r.metadata.name}: {r.status.message if r.status else 'no status'}"
                        for r in rollouts
                    )
                    raise constants.DemoFailed(
                        f"the rollouts were not Ready within {within:.0f} s ({summary}); "
                        f"operator log: {operator.log_path}"
                    )
                await asyncio.sleep(constants.POLL_SECONDS)


async def _promote_waiting(
    kubeconfig: Path, rollouts: Sequence[modelrollout.ModelRollout], *, say: constants.Say
) -> None:
    """Promote each wave awaiting approval, saying so (the manual gate of the demo)."""
    for rollout in rollouts:
        control = rollout.status.control if rollout.status else None
        if control is None or control.awaiting_approval is None:
            continue
        name = rollout.metadata.name or ""
        say(
            f"    {name}: wave {control.awaiting_approval} awaits approval; "
            f"edgewave rollout promote {name}"
        )
        api = await clients.connect(kubeconfig)
        try:
            outcome = await requesting.send(
                api,
                namespace=rollout.metadata.namespace or constants.ROLLOUT_NAMESPACE,
                name=name,
                action=controls.Action.PROMOTE,
            )
        except requesting.Refused as refused:  # it moved on since this read: look again
            say(f"    {refused}")
            continue
        finally:
            await api.close()
        say(f"    {outcome.line()}")


def _log_changes(
    rollouts: Sequence[modelrollout.ModelRollout], *, last: dict[str, str], say: constants.Say
) -> None:
    """Without a terminal (logs, tests): one line whenever a rollout's message changes."""
    for rollout in rollouts:
        status = rollout.status
        if status is None or status.observed_generation != rollout.metadata.generation:
            line = f"waiting for the operator to see generation {rollout.metadata.generation}"
        else:
            line = status.message or str(status.phase)
        name = rollout.metadata.name or ""
        if last.get(name) != line:
            last[name] = line
            say(f"    {name}: {line}")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
