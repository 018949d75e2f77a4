"""Post what one rollout turn decided to say: its Events and its audit log lines.

`planning.reconciling.decide` composes every notice (wave, gate, rollback, drift, eviction,
exclusion, compile); this module only delivers them, so the worker writes the status and
then records in one call. A notice about an agent is attached to that EdgeAgent and is
dropped when the agent is gone; a notice about the rollout is attached to the ModelRollout
and logged too. Agents are looked up through a callable, so `kube` needs no `agents`.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable

from kubernetes_asyncio import client

from edgewave_api import edgeagent
from edgewave_operator.kube import events
from edgewave_operator.planning import reconciling

log = logging.getLogger(__name__)


async def record(
    decision: reconciling.Decision,
    *,
    api: client.ApiClient,
    rollout: events.ObjectRef,
    agent_named: Callable[[str], edgeagent.EdgeAgent | None],
    now: datetime.datetime,
) -> None:
    """Log what the decision excluded and evicted; post its notices as Events."""
    extra = {"rollout": f"{rollout.namespace}/{rollout.name}"}
    for item in decision.newly_excluded:
        log.info(
            "excluded agent %s (region %s): %s", item.agent, item.region, item.message,
            extra={**extra, "agent": item.agent, "region": item.region,
                   "policy": item.source, "reason": item.reason},
        )  # fmt: skip
    for eviction in decision.newly_evicted:
        log.warning(
            "residency eviction of %s from %s: %s", eviction.model, eviction.agent,
            eviction.violation.message, extra={**extra, "agent": eviction.agent},
        )  # fmt: skip
    for notice in decision.notices:
        agent = agent_named(notice.agent) if notice.agent else None
        if notice.agent is not None and agent is None:
            continue  # the agent is gone: nothing to attach its event to
        if agent is None:
            log.info("%s: %s", notice.reason, notice.message, extra=extra)
        await events.post(
            api, about=events.agent_ref(agent) if agent else rollout,
            type_=notice.type.value, reason=notice.reason, message=notice.message, now=now,
        )  # fmt: skip
