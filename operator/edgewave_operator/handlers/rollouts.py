"""One worker per ModelRollout: parse -> gather -> plan -> write status -> act, in a loop.

Run by a kopf daemon (`registration`), so it lives exactly as long as the object and
kopf stops it on deletion. Each turn reads the live object and the fleet (kopf index +
the inventory's live answers), compiles (memoized), asks `planning.stepping` for the next
step, writes the status only if it changed, records Events for transitions, then acts.
Actions run as one task that is cancelled when the spec's model version changes (the
rollout is superseded: builds and pushes in flight stop) or the object goes away. The
only memory kept across operator restarts is the status itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from edgewave_api import edgeagent, modelrollout, residencypolicy
from edgewave_api.errors import EdgewaveError, PermanentError
from edgewave_api.telemetry import spans
from edgewave_operator.handlers import compiling as engine_builds
from edgewave_operator.handlers.inventory import agent_ref
from edgewave_operator.handlers.runtime import Runtime
from edgewave_operator.kube import events, patching
from edgewave_operator.planning import (
    conditions,
    parsing,
    progress,
    rendering,
    residency,
    stepping,
    summaries,
    targeting,
    views,
)

log = logging.getLogger(__name__)

EVICTION_RETRY_SECONDS = 5.0
ROLLBACK_REASONS = {
    "LatencyTooHigh": "latency",
    "ErrorRateTooHigh": "error_rate",
    "ActivationFailed": "activation",
    "ProgressDeadlineExceeded": "unreachable",
    "InsufficientSamples": "insufficient_samples",
}
POLICY_SOURCE = "ResidencyPolicy/"
RESIDENCY_REASONS = frozenset(reason.value for reason in residency.Reason)


@dataclasses.dataclass
class Plan:
    """Everything one turn decided, for writing and acting."""

    rollout: modelrollout.ModelRollout
    intent: stepping.Intent
    step: stepping.Step
    rules: residency.ResidencyRules
    evictions: tuple[residency.Eviction, ...]
    engines: engine_builds.Engines | None


def _compiled(status: conditions.Status, *, reason: str, message: str) -> conditions.Condition:
    return conditions.Condition(
        type=conditions.Type.COMPILED, status=status, reason=reason, message=message
    )


class RolloutWorker:
    def __init__(self, runtime: Runtime, *, uid: str, name: str, namespace: str) -> None:
        self.runtime = runtime
        self.uid = uid
        self.name = name
        self.namespace = namespace
        self.current: progress.Progress | None = None
        self.written: dict[str, Any] | None = None
        self.observation: stepping.Observation | None = None
        self.compile_failed_generation: int | None = None
        self.compile_error = ""
        self.eviction_attempts: dict[str, datetime.datetime] = {}
        self.evictions_reported: set[tuple[str, str]] = set()
        self.exclusions_reported: frozenset[tuple[str, str, str]] | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def ref(self, rollout: modelrollout.ModelRollout) -> events.ObjectRef:
        return events.ObjectRef(
            kind="ModelRollout",
            name=self.name,
            namespace=self.namespace,
            uid=rollout.metadata.uid or self.uid,
        )

    # -- gather and plan ---------------------------------------------------------------

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

    async def plan(
        self,
        body: Mapping[str, Any],
        *,
        agents: Iterable[edgeagent.EdgeAgent],
        policies: Iterable[residencypolicy.ResidencyPolicy],
    ) -> Plan:
        generation = int((body.get("metadata") or {}).get("generation") or 0)
        with self._span(generation=generation, operation="plan"), spans.plan():
            return await self._plan(body, agents=agents, policies=policies)

    async def _plan(
        self,
        body: Mapping[str, Any],
        *,
        agents: Iterable[edgeagent.EdgeAgent],
        policies: Iterable[residencypolicy.ResidencyPolicy],
    ) -> Plan:
        now = self.runtime.clock()
        rollout = modelrollout.ModelRollout.model_validate(dict(body))
        generation = rollout.metadata.generation or 0
        if self.current is None:
            self.current = parsing.progress_of(rollout.status, now=now)
            self.written = (
                rollout.status.model_dump(by_alias=True, exclude_none=True, mode="json")
                if rollout.status
                else None
            )
        agent_list = list(agents)
        policy_list = list(policies)
        fleet = self.runtime.inventory.views(agent_list)
        intent = parsing.intent(rollout)
        rules = parsing.residency_rules(rollout, policy_list)
        missing = parsing.missing_policy(rollout, policy_list)
        if missing is not None:
            # Fail closed: nothing is a target until the referenced policy exists.
            rules = residency.ResidencyRules(
                rules=(
                    *rules.rules,
                    residency.ResidencyRule(
                        source=f"ResidencyPolicy/{missing} (not found)",
                        allowed_regions=frozenset(),
                    ),
                )
            )
        found = targeting.select_targets(
            spec=parsing.target_spec(rollout),
            rules=rules,
            fleet=fleet,
            model=intent.model,
            version=intent.version,
        )
        evictions = residency.evictions(model=intent.model, rules=rules, fleet=fleet)
        self.runtime.policy_statuses.note_evictions(
            policies=[
                source.removeprefix(POLICY_SOURCE)
                for source in rules.sources
                if source.startswith(POLICY_SOURCE)
            ],
            pairs=[(e.agent, e.model) for e in evictions],
        )
        engines: engine_builds.Engines | None = None
        compiled = _compiled(
            conditions.Status.UNKNOWN, reason="WaitingForAgents", message="no target answered yet"
        )
        platforms = {
            agent.name: self.runtime.inventory.live[agent.name]
            for agent in found.targets
            if agent.name in self.runtime.inventory.live
        }
        step: stepping.Step | None = None
        if self.compile_failed_generation == generation:
            compiled = _compiled(
                conditions.Status.FALSE, reason="CompileFailed", message=self.compile_error
            )
            step = stepping.compile_failed(
                intent=intent, current=self.current, message=self.compile_error, now=now
            )
        elif platforms:
            try:
                engines = await self.runtime.builds.engines_for(
                    uid=self.uid, spec=rollout.spec, platforms=platforms
                )
            except PermanentError as error:
                self.compile_failed_generation = generation
                self.compile_error = str(error)
                compiled = _compiled(
                    conditions.Status.FALSE, reason="CompileFailed", message=str(error)
                )
                step = stepping.compile_failed(
                    intent=intent, current=self.current, message=str(error), now=now
                )
            else:
                self.compile_failed_generation = None
                self.current = stepping.compile_recovered(self.current)
                compiled = _compiled(
                    conditions.Status.TRUE,
                    reason="EnginesReady",
                    message=f"{len(engines.statuses)} engines for {len(engines.by_agent)} agents"
                    + (f", {len(engines.refused)} agents unservable" if engines.refused else ""),
                )
        by_agent: Mapping[str, views.EngineRef] = engines.by_agent if engines else {}
        found = targeting.exclude(
            found,
            refused=dict(engines.refused) if engines else {},
            reason=targeting.Exclusion.NO_COMPATIBLE_BACKEND.value,
        )
        found = targeting.exclude(
            found,
            refused=dict(engines.build_failed) if engines else {},
            reason=targeting.Exclusion.AGENT_BUILD_FAILED.value,
        )
        waves, found = targeting.assign_waves(waves=parsing.wave_specs(rollout), targeting=found)
        if step is None:
            step = stepping.next_step(
                intent=intent,
                waves=waves,
                engines=by_agent,
                current=self.current,
                now=now,
                observation=self.observation,
            )
        self.observation = None
        self.current = step.progress
        summary = summaries.summarize(
            intent=intent, waves=waves, targets=found, engines=by_agent, current=step.progress
        )
        status = rendering.rollout_status(
            generation=generation,
            current=step.progress,
            summary=summary,
            targets=found,
            evictions=evictions,
            compiled=compiled,
            engines=engines.statuses if engines else (),
            previous=rollout.status,
            now=now,
        )
        await self.write(status)
        await self.record(rollout, step=step, evictions=evictions, found=found)
        self.count(step, summary)
        return Plan(
            rollout=rollout,
            intent=intent,
            step=step,
            rules=rules,
            evictions=evictions,
            engines=engines,
        )

    def count(self, step: stepping.Step, summary: summaries.Summary) -> None:
        metrics = self.runtime.metrics
        metrics.set_rollout_phase(rollout=self.key, phase=step.progress.phase.value)
        for region in summary.regions:
            metrics.set_rollout_progress(
                rollout=self.key,
                region=region.region,
                targets=region.totals.targets,
                updated=region.totals.updated,
            )
        for event in step.events:
            if event.reason in (stepping.Reason.WAVE_PASSED, stepping.Reason.WAVE_FAILED):
                metrics.wave_finished(passed=event.reason == stepping.Reason.WAVE_PASSED)
            elif event.reason == stepping.Reason.ROLLBACK_STARTED:
                failure = step.progress.failure
                reason = failure.reason if failure else ""
                metrics.rolled_back(reason=ROLLBACK_REASONS.get(reason, "other"))

    async def write(self, status: modelrollout.ModelRolloutStatus) -> None:
        body = status.model_dump(by_alias=True, exclude_none=True, mode="json")
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
        self,
        rollout: modelrollout.ModelRollout,
        *,
        step: stepping.Step,
        evictions: tuple[residency.Eviction, ...],
        found: targeting.Targeting,
    ) -> None:
        now = self.runtime.clock()
        api = self.runtime.api
        repairs = sorted(
            update.agent
            for action in step.actions
            if isinstance(action, stepping.UpdateBatch)
            for update in action.updates
            if update.repair
        )
        drift = (
            (
                stepping.Event(
                    type=stepping.EventType.NORMAL,
                    reason="DriftRepair",
                    message=f"agents {', '.join(repairs)} no longer serve "
                    f"{rollout.spec.model.version}; restoring it",
                ),
            )
            if repairs
            else ()
        )
        for event in (*step.events, *drift):
            log.info("%s: %s", event.reason, event.message, extra={"rollout": self.key})
            await events.post(
                api,
                about=self.ref(rollout),
                type_=event.type.value,
                reason=event.reason,
                message=event.message,
                now=now,
            )
        pending = {(e.agent, e.violation.reason.value) for e in evictions}
        for eviction in evictions:
            mark = (eviction.agent, eviction.violation.reason.value)
            if mark in self.evictions_reported:
                continue
            self.evictions_reported.add(mark)
            self.runtime.metrics.residency_evicted(region=eviction.region)
            message = (
                f"removing {eviction.model} {', '.join(eviction.versions)} from agent "
                f"{eviction.agent} (region {eviction.region}): {eviction.violation.message}"
            )
            log.warning(
                "residency eviction: %s",
                message,
                extra={"rollout": self.key, "agent": eviction.agent},
            )
            await events.post(
                api, about=self.ref(rollout), type_="Warning", reason="ResidencyEviction",
                message=message, now=now,
            )  # fmt: skip
            agent = self.runtime.inventory.specs.get(eviction.agent)
            if agent is not None:
                await events.post(
                    api, about=agent_ref(agent), type_="Warning", reason="ResidencyEviction",
                    message=message, now=now,
                )  # fmt: skip
        for mark in sorted(self.evictions_reported - pending):
            self.evictions_reported.discard(mark)
            await events.post(
                api,
                about=self.ref(rollout),
                type_="Normal",
                reason="ResidencyEvicted",
                message=f"agent {mark[0]} no longer holds {rollout.spec.model.name} ({mark[1]})",
                now=now,
            )
        await self.record_exclusions(rollout, found, now=now)

    async def record_exclusions(
        self, rollout: modelrollout.ModelRollout, found: targeting.Targeting, *, now: Any
    ) -> None:
        """Audit trail of exclusions: a log line per agent, an Event when the set changes."""
        current = frozenset((e.agent, e.reason, e.source) for e in found.excluded)
        if current == self.exclusions_reported:
            return
        before = self.exclusions_reported or frozenset()
        self.exclusions_reported = current
        for item in found.excluded:
            if (item.agent, item.reason, item.source) in before:
                continue
            if item.reason in RESIDENCY_REASONS:
                self.runtime.metrics.residency_rejected(region=item.region)
            log.info(
                "excluded agent %s (region %s): %s",
                item.agent,
                item.region,
                item.message,
                extra={
                    "rollout": self.key,
                    "agent": item.agent,
                    "region": item.region,
                    "policy": item.source,
                    "reason": item.reason,
                },
            )
        if not current:
            return
        by_reason: dict[str, list[targeting.Excluded]] = {}
        for item in found.excluded:
            by_reason.setdefault(item.reason, []).append(item)
        parts = []
        for reason, items in sorted(by_reason.items()):
            names = ", ".join(sorted(i.agent for i in items)[:5])
            more = f" and {len(items) - 5} more" if len(items) > 5 else ""
            sources = ", ".join(sorted({i.source for i in items if i.source}))
            parts.append(
                f"{len(items)} {reason} ({names}{more})" + (f" by {sources}" if sources else "")
            )
        await events.post(
            self.runtime.api,
            about=self.ref(rollout),
            type_="Normal",
            reason="AgentsExcluded",
            message="not targeted: " + "; ".join(parts),
            now=now,
        )

    # -- act ---------------------------------------------------------------------------

    def check(self, plan: Plan) -> Any:
        """Right before touching an agent: is it still a compliant, uncordoned target?"""

        def why_not(name: str) -> str | None:
            agent = self.runtime.inventory.specs.get(name)
            if agent is None:
                return "the EdgeAgent was deleted"
            view = self.runtime.inventory.view(agent)
            violation = plan.rules.violation(view)
            if violation is not None:
                return violation.message
            if view.cordoned and view.active_version(plan.intent.model) != plan.intent.version:
                return "the agent is cordoned"
            return None

        return why_not

    async def act(self, plan: Plan) -> None:
        generation = plan.rollout.metadata.generation or 0
        with self._span(generation=generation, operation="act"):
            await self._act(plan)

    async def _act(self, plan: Plan) -> None:
        executor = self.runtime.executor
        paths = plan.engines.paths if plan.engines else {}
        jobs: list[Any] = []
        for action in plan.step.actions:
            if isinstance(action, stepping.UpdateBatch):
                jobs.append(self._update(action, paths=paths, plan=plan))
            elif isinstance(action, stepping.Observe):
                jobs.append(self._observe(action, plan=plan))
            else:
                jobs.append(executor.revert(action, rollout=self.uid))
        now = self.runtime.clock()
        due = [
            e
            for e in plan.evictions
            if now
            - self.eviction_attempts.get(
                e.agent, datetime.datetime.min.replace(tzinfo=datetime.UTC)
            )
            >= datetime.timedelta(seconds=EVICTION_RETRY_SECONDS)
        ]
        for eviction in due:
            self.eviction_attempts[eviction.agent] = now
        if due:
            jobs.append(executor.evict(due, rollout=self.uid))
        if jobs:
            await asyncio.gather(*jobs)

    async def _update(
        self, batch: stepping.UpdateBatch, *, paths: Mapping[str, Any], plan: Plan
    ) -> None:
        with spans.wave(name=batch.wave):
            failures = await self.runtime.executor.update(
                batch, paths=paths, check=self.check(plan), rollout=self.uid
            )
        if failures and self.current is not None:
            self.current = stepping.record_failures(
                self.current, wave=batch.wave, failures=failures
            )

    async def _observe(self, action: stepping.Observe, *, plan: Plan) -> None:
        with spans.gate(wave=action.wave):
            self.observation = await self.runtime.executor.observe(
                action,
                model=plan.intent.model,
                version=plan.intent.version,
                now=self.runtime.clock,
            )

    # -- the loop ----------------------------------------------------------------------

    async def run(
        self,
        *,
        body: Mapping[str, Any],
        stopped: Any,
        agents: Any,
        policies: Any,
    ) -> None:
        waker = self.runtime.waker(self.uid)
        settings = self.runtime.settings
        while not stopped:
            waker.clear()
            try:
                plan = await self.plan(body, agents=_values(agents), policies=_values(policies))
            except EdgewaveError as error:
                log.warning("rollout %s: %s", self.key, error, extra={"rollout": self.key})
                await _sleep(waker, stopped=stopped, seconds=error.retry_after or 5.0)
                continue
            step = plan.step
            if step.actions or plan.evictions:
                version = plan.intent.version
                acting = asyncio.create_task(self.act(plan))
                while not acting.done():
                    await asyncio.wait({acting}, timeout=0.2)
                    current = _version(body)
                    if stopped or (current is not None and current != version):
                        acting.cancel()
                        with contextlib.suppress(asyncio.CancelledError, EdgewaveError):
                            await acting
                        log.info(
                            "rollout %s: version %s superseded by %s; work in flight cancelled",
                            self.key, version, current, extra={"rollout": self.key},
                        )  # fmt: skip
                        break
                if acting.done() and not acting.cancelled():
                    failure = acting.exception()
                    if failure is not None:
                        log.error("rollout %s: acting failed: %r", self.key, failure)
                        await _sleep(waker, stopped=stopped, seconds=2.0)
                if step.actions:
                    continue
            now = self.runtime.clock()
            timeout = settings.reconcile_period_seconds
            if step.wake_at is not None:
                timeout = min(timeout, max(0.0, (step.wake_at - now).total_seconds()))
            if plan.evictions:
                timeout = min(timeout, EVICTION_RETRY_SECONDS)
            await _sleep(waker, stopped=stopped, seconds=timeout)


def _values(index: Any) -> list[Any]:
    """Values of a kopf index (key -> store of values), or of a plain mapping."""
    found: list[Any] = []
    for value in index.values():
        if isinstance(value, Iterable) and not isinstance(value, str | bytes | dict):
            found.extend(value)
        else:
            found.append(value)
    return found


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
