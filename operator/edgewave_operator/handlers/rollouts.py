"""One worker per ModelRollout: gather -> decide -> write -> act, in a loop.

Run by a kopf daemon (`registration`), so it lives exactly as long as the object and
kopf stops it on deletion. Each turn gathers a `reconciling.Snapshot` (`gathering`), asks
`reconciling.decide` for the `Decision`, writes the status only if it changed, records the
decision's events (`kube.recording`), then carries out its actions (`agents.acting`). The
actions run as one task that returns their outcomes for the next turn; `daemons` cancels it
when the spec's model version changes (the rollout is superseded: builds and pushes in
flight stop) or the object goes away. The only memory kept across operator restarts is the
status itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from edgewave_api import edgeagent, modelrollout, residencypolicy
from edgewave_api.errors import EdgewaveError
from edgewave_api.telemetry import spans
from edgewave_operator.agents import acting
from edgewave_operator.handlers import daemons, gathering
from edgewave_operator.handlers.runtime import Runtime
from edgewave_operator.kube import events, patching, recording
from edgewave_operator.planning import ownership, reconciling, unreadable

log = logging.getLogger(__name__)


class RolloutWorker:
    def __init__(self, runtime: Runtime, *, uid: str, name: str, namespace: str) -> None:
        self.runtime = runtime
        self.owner = ownership.Owner(namespace=namespace, name=name, uid=uid)
        self.written: dict[str, Any] | None = None
        """The status last written (the patch is the difference from it)."""

    async def run(
        self, *, body: Mapping[str, Any], stopped: Any, agents: Any, policies: Any
    ) -> None:
        waker, key = self.runtime.waker(self.owner.uid), self.owner.key
        memory: reconciling.Memory | None = None
        outcomes = reconciling.Outcomes()
        while not stopped:
            waker.clear()
            try:
                decision = await self.turn(
                    body,
                    agents=daemons.values(agents),
                    policies=daemons.values(policies),
                    memory=memory,
                    outcomes=outcomes,
                )
            except EdgewaveError as error:
                log.warning("rollout %s: %s", key, error, extra={"rollout": key})
                await daemons.sleep(waker, stopped=stopped, seconds=error.retry_after or 5.0)
                continue
            memory, outcomes = decision.memory, reconciling.Outcomes()
            if decision.actions:
                outcomes = await daemons.act_unless_superseded(
                    decision, acting=asyncio.create_task(self.act(decision)),
                    body=body, stopped=stopped, waker=waker, key=key,
                )  # fmt: skip
                if decision.again:
                    continue
            timeout = self.runtime.settings.reconcile_period_seconds
            if decision.wake_at is not None:
                until = (decision.wake_at - self.runtime.clock()).total_seconds()
                timeout = min(timeout, max(0.0, until))
            await daemons.sleep(waker, stopped=stopped, seconds=timeout)

    async def turn(
        self,
        body: Mapping[str, Any],
        *,
        agents: Iterable[edgeagent.EdgeAgent],
        policies: Iterable[residencypolicy.ResidencyPolicy | unreadable.UnreadablePolicy],
        memory: reconciling.Memory | None,
        outcomes: reconciling.Outcomes,
    ) -> reconciling.Decision:
        generation = int((body.get("metadata") or {}).get("generation") or 0)
        owner = self.owner
        with spans.rollout(
            namespace=owner.namespace, name=owner.name, uid=owner.uid,
            generation=generation, operation="plan",
        ), spans.plan():  # fmt: skip
            snapshot = await gathering.gather(
                body, runtime=self.runtime, uid=owner.uid, agents=agents,
                policies=policies, memory=memory, outcomes=outcomes,
            )  # fmt: skip
            if memory is None:  # the first turn: the status as this process found it
                status = snapshot.rollout.status
                self.written = _dump(status) if status else None
            decision = reconciling.decide(snapshot)
            await self.write(decision.status)
            await self.record(snapshot.rollout, decision)
        return decision

    async def write(self, status: modelrollout.ModelRolloutStatus) -> None:
        body = _dump(status)
        if body == self.written:
            return
        await patching.patch_status(
            self.runtime.api,
            plural="modelrollouts",
            name=self.owner.name,
            namespace=self.owner.namespace,
            status=patching.merge_patch(self.written, body),
        )
        self.written = body

    async def record(
        self, rollout: modelrollout.ModelRollout, decision: reconciling.Decision
    ) -> None:
        """Post the decision's events, log what it excluded and evicted, count it."""
        runtime, owner = self.runtime, self.owner
        runtime.policy_statuses.note_evictions(
            policies=decision.evicting_under,
            pairs=[(e.agent, e.model) for e in decision.evictions],
        )
        await recording.record(
            decision, api=runtime.api, agent_named=runtime.inventory.specs.get,
            rollout=events.ObjectRef(
                kind="ModelRollout", name=owner.name, namespace=owner.namespace,
                uid=rollout.metadata.uid or owner.uid,
            ),
            now=runtime.clock(),
        )  # fmt: skip
        runtime.metrics.count_turn(rollout=owner.key, decision=decision)

    async def act(self, decision: reconciling.Decision) -> reconciling.Outcomes:
        """Carry out the decision's actions; what they returned, for the next turn."""
        runtime = self.runtime
        return await acting.act(
            decision, owner=self.owner, executor=runtime.executor,
            inventory=runtime.inventory, gateways=runtime.gateways, clock=runtime.clock,
        )  # fmt: skip


def _dump(status: modelrollout.ModelRolloutStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")
