"""Read everything one rollout turn decides on into a `reconciling.Snapshot`.

The gatherer of the turn (cert-manager's shape): the live object, validated; the fleet as
the kopf index and the inventory's live answers show it; the policies, readable or not; the
engines for the targets' platforms, compiled and memoized (`compiling.engines`), or the
compile error; what the last turn remembered and what its actions returned; and `now`.
It reads and builds, never decides: `planning.reconciling.decide` does that. The engines
are skipped when the last turn already failed to compile this generation
(`reconciling.compile_skipped`), and asked only for targets whose platform is known.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from edgewave_api import edgeagent, modelrollout, residencypolicy
from edgewave_api.errors import PermanentError
from edgewave_operator.handlers.runtime import Runtime
from edgewave_operator.planning import builds, reconciling, unreadable


async def gather(
    body: Mapping[str, Any],
    *,
    runtime: Runtime,
    uid: str,
    agents: Iterable[edgeagent.EdgeAgent],
    policies: Iterable[residencypolicy.ResidencyPolicy | unreadable.UnreadablePolicy],
    memory: reconciling.Memory | None,
    outcomes: reconciling.Outcomes,
) -> reconciling.Snapshot:
    now = runtime.clock()
    rollout = modelrollout.ModelRollout.model_validate(dict(body))
    inventory = runtime.inventory
    fleet = tuple(inventory.views(list(agents)))
    policy_list, unreadable_policies = unreadable.split(policies)
    engines: builds.Engines | None = None
    error: str | None = None
    if not reconciling.compile_skipped(memory, generation=rollout.metadata.generation or 0):
        scope = reconciling.scope(
            rollout,
            fleet=fleet,
            policies=policy_list,
            unreadable_policies=unreadable_policies,
        )
        platforms = {
            agent.name: inventory.live[agent.name]
            for agent in scope.targeting.targets
            if agent.name in inventory.live
        }
        if platforms:
            try:
                engines = await runtime.builds.engines_for(
                    uid=uid, spec=rollout.spec, platforms=platforms
                )
            except PermanentError as failure:
                error = str(failure)
    return reconciling.Snapshot(
        rollout=rollout,
        fleet=fleet,
        policies=policy_list,
        now=now,
        engines=engines,
        compile_error=error,
        memory=memory,
        outcomes=outcomes,
        unreadable=unreadable_policies,
    )
