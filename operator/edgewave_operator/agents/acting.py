"""Carry out one decision's actions on agents and return what they came to.

`planning.reconciling.decide` resolves every action; this module only dispatches them to
the `executing.Executor` (updates, health watches, reverts, evictions, all at once), keeps
the rollout's engines pinned in the gateways' caches, and hands back the `Outcomes` (the
agents that failed, the last health observation) that the next turn's snapshot reads.
Nothing is stored on an object between turns. The last check before an agent is touched is
the decision's own eligibility rule, applied to the agent as the inventory sees it now.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable

from edgewave_api.telemetry import spans
from edgewave_operator.agents import executing, gatewayed
from edgewave_operator.agents.inventory import Inventory
from edgewave_operator.planning import ownership, reconciling, stepping


def pin_owner(uid: str) -> str:
    """Who holds a rollout's pins in gateways' engine caches."""
    return f"rollout-{uid}"


async def act(
    decision: reconciling.Decision,
    *,
    owner: ownership.Owner,
    executor: executing.Executor,
    inventory: Inventory,
    gateways: gatewayed.Gateways,
    clock: Callable[[], datetime.datetime],
) -> reconciling.Outcomes:
    """Carry out the decision's actions; what they returned, for the next turn."""
    eligibility = decision.eligibility
    failures: dict[str, dict[str, str]] = {}
    observations: list[stepping.Observation] = []

    def check(name: str) -> str | None:  # the last check, on the agent as it is now
        return eligibility.why_not(inventory.view_of(name))

    async def update(batch: stepping.UpdateBatch) -> None:
        with spans.wave(name=batch.wave):
            failed = await executor.update(
                batch, paths=decision.paths, check=check, rollout=owner.uid, owner=owner
            )
        if failed:
            failures.setdefault(batch.wave, {}).update(failed)

    async def observe(action: stepping.Observe) -> None:
        with spans.gate(wave=action.wave):
            observations.append(
                await executor.observe(
                    action,
                    model=eligibility.model,
                    version=eligibility.version,
                    now=clock,
                )
            )

    jobs: list[Awaitable[object]] = []
    for action in decision.actions:
        if isinstance(action, stepping.UpdateBatch):
            jobs.append(update(action))
        elif isinstance(action, stepping.Observe):
            jobs.append(observe(action))
        elif isinstance(action, stepping.RevertBatch):
            jobs.append(executor.revert(action, rollout=owner.uid, owner=owner))
        else:
            jobs.append(executor.evict(action.evictions, rollout=owner.uid, owner=owner))
    with spans.rollout(
        namespace=owner.namespace,
        name=owner.name,
        uid=owner.uid,
        generation=decision.status.observed_generation or 0,
        operation="act",
    ):
        if decision.paths:  # keep this rollout's engines in the gateways' caches
            await gateways.pin(pin_owner(owner.uid), decision.paths)
        await asyncio.gather(*jobs)
    return reconciling.Outcomes(
        failures=failures, observation=observations[-1] if observations else None
    )
