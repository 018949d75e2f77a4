"""One worker per ModelRollout: gather -> decide -> write -> act, in a loop.

Run by a kopf daemon (`registration`), so it lives exactly as long as the object and
kopf stops it on deletion. Each turn gathers a `reconciling.Snapshot` (the live object,
the fleet from the kopf index and the inventory's live answers, the engines, compiled
and memoized, what the last turn remembered and what its actions returned), asks
`reconciling.decide` for the `Decision`, writes the status only if it changed, posts the
decision's events, then carries out its actions. Actions run as one task that returns
their outcomes for the next turn; it is cancelled when the spec's model version changes
(the rollout is superseded: builds and pushes in flight stop) or the object goes away.
The only memory kept across operator restarts is the status itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from edgewave_api import controls, edgeagent, modelrollout, residencypolicy
from edgewave_api.errors import EdgewaveError, PermanentError
from edgewave_api.telemetry import spans
from edgewave_operator.handlers.runtime import Runtime
from edgewave_operator.kube import events, patching
from edgewave_operator.planning import builds, ownership, reconciling, stepping, unreadable

log = logging.getLogger(__name__)


class RolloutWorker:
    def __init__(self, runtime: Runtime, *, uid: str, name: str, namespace: str) -> None:
        self.runtime = runtime
        self.uid = uid
        self.name = name
        self.namespace = namespace
        self.written: dict[str, Any] | None = None
        """The status last written (the patch is the difference from it)."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def _span(
        self, *, generation: int, operation: str
    ) -> contextlib.AbstractContextManager[object]:
        """This turn's span in the trace of the rollout generation (docs/observability.md)."""
        return spans.rollout(
            namespace=self.namespace,
            name=self.name,
            uid=self.uid,
            generation=generation,
            operation=operation,
        )

    # -- gather -> decide -> write ---------------------------------------------------------

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
        with self._span(generation=generation, operation="plan"), spans.plan():
            snapshot = await self.gather(
                body, agents=agents, policies=policies, memory=memory, outcomes=outcomes
            )
            decision = reconciling.decide(snapshot)
            await self.write(decision.status)
            await self.record(snapshot.rollout, decision)
        return decision

    async def gather(
        self,
        body: Mapping[str, Any],
        *,
        agents: Iterable[edgeagent.EdgeAgent],
        policies: Iterable[residencypolicy.ResidencyPolicy | unreadable.UnreadablePolicy],
        memory: reconciling.Memory | None,
        outcomes: reconciling.Outcomes,
    ) -> reconciling.Snapshot:
        now = self.runtime.clock()
        rollout = modelrollout.ModelRollout.model_validate(dict(body))
        if memory is None:
            status = rollout.status
            self.written = _dump(status) if status else None
        inventory = self.runtime.inventory
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
                    engines = await self.runtime.builds.engines_for(
                        uid=self.uid, spec=rollout.spec, platforms=platforms
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

    async def write(self, status: modelrollout.ModelRolloutStatus) -> None:
        body = _dump(status)
        if body == self.written:
            return
        await patching.patch_status(
            self.runtime.api,
            plural="modelrollouts",
            name=self.name,
            namespace=self.namespace,
            status=patching.merge_patch(self.written, body),
        )
        self.written = body

    async def record(
        self, rollout: modelrollout.ModelRollout, decision: reconciling.Decision
    ) -> None:
        """Post the decision's events, log what it excluded and evicted, count it."""
        runtime, now, extra = self.runtime, self.runtime.clock(), {"rollout": self.key}
        runtime.policy_statuses.note_evictions(
            policies=decision.evicting_under,
            pairs=[(e.agent, e.model) for e in decision.evictions],
        )
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
        rollout_ref = events.ObjectRef(
            kind="ModelRollout", name=self.name, namespace=self.namespace,
            uid=rollout.metadata.uid or self.uid,
        )  # fmt: skip
        for notice in decision.notices:
            agent = runtime.inventory.specs.get(notice.agent) if notice.agent else None
            if notice.agent is not None and agent is None:
                continue  # the agent is gone: nothing to attach its event to
            if agent is None:
                log.info("%s: %s", notice.reason, notice.message, extra=extra)
            await events.post(
                runtime.api, about=events.agent_ref(agent) if agent else rollout_ref,
                type_=notice.type.value, reason=notice.reason, message=notice.message, now=now,
            )  # fmt: skip
        runtime.metrics.count_turn(rollout=self.key, decision=decision)

    # -- act -------------------------------------------------------------------------------

    async def act(self, decision: reconciling.Decision) -> reconciling.Outcomes:
        """Carry out the decision's actions; what they returned, for the next turn."""
        executor, inventory = self.runtime.executor, self.runtime.inventory
        eligibility = decision.eligibility
        owner = ownership.Owner(namespace=self.namespace, name=self.name, uid=self.uid)
        failures: dict[str, dict[str, str]] = {}
        observations: list[stepping.Observation] = []

        def check(name: str) -> str | None:  # the last check, on the agent as it is now
            return eligibility.why_not(inventory.view_of(name))

        async def update(batch: stepping.UpdateBatch) -> None:
            with spans.wave(name=batch.wave):
                failed = await executor.update(
                    batch, paths=decision.paths, check=check, rollout=self.uid, owner=owner
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
                        now=self.runtime.clock,
                    )
                )

        jobs: list[Any] = []
        for action in decision.actions:
            if isinstance(action, stepping.UpdateBatch):
                jobs.append(update(action))
            elif isinstance(action, stepping.Observe):
                jobs.append(observe(action))
            elif isinstance(action, stepping.RevertBatch):
                jobs.append(executor.revert(action, rollout=self.uid, owner=owner))
            else:
                jobs.append(executor.evict(action.evictions, rollout=self.uid, owner=owner))
        generation = decision.status.observed_generation or 0
        with self._span(generation=generation, operation="act"):
            if decision.paths:  # keep this rollout's engines in the gateways' caches
                await self.runtime.gateways.pin(pin_owner(self.uid), decision.paths)
            await asyncio.gather(*jobs)
        return reconciling.Outcomes(
            failures=failures, observation=observations[-1] if observations else None
        )

    # -- the loop --------------------------------------------------------------------------

    async def run(
        self, *, body: Mapping[str, Any], stopped: Any, agents: Any, policies: Any
    ) -> None:
        waker = self.runtime.waker(self.uid)
        memory: reconciling.Memory | None = None
        outcomes = reconciling.Outcomes()
        while not stopped:
            waker.clear()
            try:
                decision = await self.turn(
                    body,
                    agents=_values(agents),
                    policies=_values(policies),
                    memory=memory,
                    outcomes=outcomes,
                )
            except EdgewaveError as error:
                log.warning("rollout %s: %s", self.key, error, extra={"rollout": self.key})
                await _sleep(waker, stopped=stopped, seconds=error.retry_after or 5.0)
                continue
            memory, outcomes = decision.memory, reconciling.Outcomes()
            if decision.actions:
                outcomes = await self._act_unless_superseded(decision, body=body, stopped=stopped)
                if decision.again:
                    continue
            timeout = self.runtime.settings.reconcile_period_seconds
            if decision.wake_at is not None:
                until = (decision.wake_at - self.runtime.clock()).total_seconds()
                timeout = min(timeout, max(0.0, until))
            await _sleep(waker, stopped=stopped, seconds=timeout)

    async def _act_unless_superseded(
        self, decision: reconciling.Decision, *, body: Mapping[str, Any], stopped: Any
    ) -> reconciling.Outcomes:
        """`act`, cancelled when the spec's version changes or the daemon stops, and a
        health watch also when a new request arrives (a pause or an abort need not wait
        for the gate window; the next turn watches again until the same end)."""
        version = decision.eligibility.version
        request = _request(body)
        watching_only = all(isinstance(a, stepping.Observe) for a in decision.actions)
        acting = asyncio.create_task(self.act(decision))
        while not acting.done():
            await asyncio.wait({acting}, timeout=0.2)
            current = _version(body)
            if watching_only and _request(body) != request:
                acting.cancel()
                with contextlib.suppress(asyncio.CancelledError, EdgewaveError):
                    await acting
                return reconciling.Outcomes()
            if stopped or (current is not None and current != version):
                acting.cancel()
                with contextlib.suppress(asyncio.CancelledError, EdgewaveError):
                    await acting
                log.info(
                    "rollout %s: version %s superseded by %s; work in flight cancelled",
                    self.key,
                    version,
                    current,
                    extra={"rollout": self.key},
                )
                return reconciling.Outcomes()
        failure = acting.exception()
        if failure is not None:
            log.error("rollout %s: acting failed: %r", self.key, failure)
            await _sleep(self.runtime.waker(self.uid), stopped=stopped, seconds=2.0)
            return reconciling.Outcomes()
        return acting.result()


def pin_owner(uid: str) -> str:
    """Who holds a rollout's pins in gateways' engine caches."""
    return f"rollout-{uid}"


def _dump(status: modelrollout.ModelRolloutStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


def _values(index: Any) -> list[Any]:
    """Values of a kopf index (key -> store of values), or of a plain mapping."""
    found: list[Any] = []
    for value in index.values():
        if isinstance(value, Iterable) and not isinstance(value, str | bytes | dict):
            found.extend(value)
        else:
            found.append(value)
    return found


def _request(body: Mapping[str, Any]) -> str | None:
    """The request annotation's value (`edgewave_api.controls`), if any."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(controls.ANNOTATION)
    return str(value) if value is not None else None


def _version(body: Mapping[str, Any]) -> str | None:
    spec = body.get("spec") or {}
    model = spec.get("model") or {}
    version = model.get("version")
    return str(version) if version is not None else None


async def _sleep(waker: asyncio.Event, *, stopped: Any, seconds: float) -> None:
    """Until woken, stopped (kopf's daemon flag), or `seconds` passed."""
    if stopped:
        return

    async def until_stopped() -> None:
        await stopped.wait()

    waiting = {asyncio.ensure_future(waker.wait()), asyncio.ensure_future(until_stopped())}
    try:
        await asyncio.wait(waiting, timeout=max(0.05, seconds), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiting:
            task.cancel()
