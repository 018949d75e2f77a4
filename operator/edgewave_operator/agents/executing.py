"""What the planner's actions do to agents: push and activate, watch health, revert, evict.

Every action re-reads the agent right before touching it: an agent that became
non-compliant since the plan was made is skipped, one that already serves the version is
not updated again, and `AgentClient.push` asks `Stat` first, so a push interrupted by a
crash resumes where the agent's verified bytes end and an artifact already stored is not
sent again. One artifact file is memory-mapped once and shared by all concurrent pushes.
Temporary agent errors are left to the next plan (the agent shows as unreachable or
pending); permanent ones (a refused activation, a failed probe) are returned as failures.

Every action arrives fully decided (`planning.reconciling`): an update carries its engine,
a revert its version, digest, backend and method. Nothing here decides again; agents are
reached only through `links.Links`, so how the operator reaches them can change alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from edgewave_api import edgeagent
from edgewave_api.errors import EdgewaveError, PermanentError
from edgewave_compiler import keys
from edgewave_operator import metrics as operator_metrics
from edgewave_operator.agents import artifacts, describing, links
from edgewave_operator.planning import (
    builds,
    gates,
    ownership,
    residency,
    rollbacks,
    stepping,
    views,
)
from edgewave_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

Check = Callable[[str], str | None]
"""Agent name -> why it must not be touched now (None: go ahead)."""


class Executor:
    def __init__(
        self,
        *,
        links: links.Links,
        settings: OperatorSettings,
        metrics: operator_metrics.OperatorMetrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._links = links
        self._settings = settings
        self._limit = asyncio.Semaphore(settings.push_concurrency)
        self._artifacts: dict[str, artifacts.Artifact] = {}
        self.pushes = 0
        self.pushed_bytes = 0

    def _artifact(self, digest: str, path: Path) -> artifacts.Artifact:
        existing = self._artifacts.get(digest)
        if existing is None or existing.path != path:
            existing = artifacts.Artifact(path=path, digest=digest, size=path.stat().st_size)
            self._artifacts[digest] = existing
        return existing

    def release(self, digests: Sequence[str]) -> None:
        for digest in digests:
            artifact = self._artifacts.pop(digest, None)
            if artifact is not None:
                artifact.close()

    # -- update ------------------------------------------------------------------------

    async def update(
        self,
        batch: stepping.UpdateBatch,
        *,
        paths: Mapping[str, Path],
        check: Check,
        rollout: str,
        owner: ownership.Owner | None = None,
    ) -> dict[str, str]:
        """Push and activate (or only stage) each update of `batch` for rollout uid `rollout`
        and `owner`; agent name -> why it failed."""
        results = await asyncio.gather(
            *(
                self._update_one(update, paths=paths, check=check, rollout=rollout, owner=owner)
                for update in batch.updates
            )
        )
        return {agent: why for agent, why in results if why is not None}

    async def _update_one(
        self,
        update: stepping.Update,
        *,
        paths: Mapping[str, Path],
        check: Check,
        rollout: str,
        owner: ownership.Owner | None,
    ) -> tuple[str, str | None]:
        agent = update.agent
        async with self._limit:
            refused = check(agent)
            if refused is not None:
                log.warning("not updating %s: %s", agent, refused, extra={"agent": agent})
                return agent, None
            engine = update.engine
            path = paths.get(engine.digest)
            if path is None and not engine.local:
                return agent, f"engine {engine.digest[:12]} is not available to push"
            region = self._links.region_of(agent)
            try:
                client = await self._links.link(agent)
                await self._deliver(client, agent=agent, engine=engine, path=path, region=region)
                if update.stage:  # outside its activation window: pushed and verified only
                    return agent, None
                await client.activate(
                    model=update.model,
                    version=update.version,
                    digest=engine.digest,
                    backend=describing.runtime_of(engine.backend),
                    rollout=rollout,
                    deadline_seconds=self._settings.activate_timeout_seconds,
                    owner=owner,
                )
            except PermanentError as error:
                log.warning("update of %s failed: %s", agent, error, extra={"agent": agent})
                return agent, str(error)
            except EdgewaveError as error:
                log.info("update of %s will be retried: %s", agent, error, extra={"agent": agent})
                return agent, None
            finally:
                with contextlib.suppress(EdgewaveError):
                    await self._links.refresh(agent)
            return agent, None

    async def _deliver(
        self,
        client: links.Link,
        *,
        agent: str,
        engine: views.EngineRef,
        path: Path | None,
        region: str,
    ) -> None:
        """Make sure `agent` holds `engine`: push what it lacks (Stat-resumed)."""
        if path is None:  # built on the agent itself: it must still be there
            stat = await client.stat(engine.digest)
            if not stat.complete:
                raise PermanentError(
                    f"agent {agent} no longer holds the engine it built ({engine.digest[:12]}); "
                    "it is rebuilt when the rollout's spec changes"
                )
            return
        started = time.monotonic()
        try:
            pushed = await client.push(self._artifact(engine.digest, path))
        except EdgewaveError:
            if self._metrics is not None:
                self._metrics.push_finished(
                    region=region, ok=False, seconds=time.monotonic() - started
                )
            raise
        self.pushes += 0 if pushed.already_present else 1
        self.pushed_bytes += pushed.sent_bytes
        if self._metrics is not None and not pushed.already_present:
            self._metrics.push_sent(region=region, amount=pushed.sent_bytes)
            self._metrics.push_finished(
                region=region,
                ok=True,
                seconds=time.monotonic() - started,
                resumed_bytes=pushed.resumed_from if pushed.sent_bytes else 0,
            )

    async def build_on_agent(
        self, agent: str, *, key: keys.BuildKey, model_path: Path
    ) -> builds.AgentBuilt:
        """Push the ONNX model to `agent` and have it build `key` with its own toolchain."""
        async with self._limit:
            client = await self._links.link(agent)
            size = (await asyncio.to_thread(model_path.stat)).st_size
            with artifacts.Artifact(path=model_path, digest=key.model_sha256, size=size) as model:
                await client.push(model)
            reply = await client.build(
                key.canonical_json(), timeout_seconds=self._settings.activate_timeout_seconds
            )
        return builds.AgentBuilt(
            digest=reply.engine_digest,
            size_bytes=reply.size_bytes,
            build_seconds=reply.build_seconds,
            log=reply.log,
        )

    # -- observe -----------------------------------------------------------------------

    async def observe(
        self,
        action: stepping.Observe,
        *,
        model: str,
        version: str,
        now: Callable[[], datetime.datetime],
    ) -> stepping.Observation:
        """Wait for the gate window, then read each agent's health of `version`."""
        delay = (action.until - now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)

        async def sample(agent: str) -> gates.HealthSample:
            async with self._limit:
                try:
                    client = await self._links.link(agent)
                    update = await client.status()
                except EdgewaveError as error:
                    log.info("no health from %s: %s", agent, error, extra={"agent": agent})
                    return gates.HealthSample(agent=agent)
            for status in update.models:
                if status.model != model:
                    continue
                for held in status.versions:
                    if held.version == version:
                        health = held.health
                        p95 = health.latency_p95_seconds * 1000 if health.requests else None
                        return gates.HealthSample(
                            agent=agent,
                            requests=health.requests,
                            errors=health.errors,
                            p95_latency_ms=p95,
                        )
            return gates.HealthSample(agent=agent)

        samples = await asyncio.gather(*(sample(agent) for agent in action.agents))
        return stepping.Observation(wave=action.wave, samples=tuple(samples))

    # -- revert ------------------------------------------------------------------------

    async def revert(
        self, batch: stepping.RevertBatch, *, rollout: str, owner: ownership.Owner | None = None
    ) -> dict[str, str]:
        """Bring each agent back to its previous version; agent name -> why not."""
        results = await asyncio.gather(
            *(self._revert_one(r, rollout=rollout, owner=owner) for r in batch.reverts)
        )
        return {agent: why for agent, why in results if why is not None}

    async def _revert_one(
        self, revert: rollbacks.Revert, *, rollout: str, owner: ownership.Owner | None
    ) -> tuple[str, str | None]:
        """Carry out `revert` as decided (never from what is known live, which may be nothing)."""
        agent = revert.agent
        async with self._limit:
            try:
                client = await self._links.link(agent)
                if revert.method is rollbacks.Method.RESTORE:
                    await client.rollback(revert.model, rollout=rollout)
                elif revert.method is rollbacks.Method.ACTIVATE and revert.to_version:
                    await client.activate(
                        model=revert.model,
                        version=revert.to_version,
                        digest=revert.digest,
                        backend=describing.runtime_of(revert.backend),
                        rollout=rollout,
                        deadline_seconds=self._settings.activate_timeout_seconds,
                        owner=owner,
                    )
                else:
                    # Nothing ran before this rollout: take the model off the agent again.
                    await client.remove_model(revert.model, rollout=rollout, owner=owner)
            except EdgewaveError as error:
                log.warning("rollback of %s failed: %s", agent, error, extra={"agent": agent})
                return agent, str(error)
            finally:
                with contextlib.suppress(EdgewaveError):
                    await self._links.refresh(agent)
            return agent, None

    # -- evict -------------------------------------------------------------------------

    async def evict(
        self,
        evictions: Sequence[residency.Eviction],
        *,
        rollout: str,
        owner: ownership.Owner | None = None,
    ) -> dict[str, str]:
        """Remove every listed version from each agent; agent name -> why not (yet)."""
        results = await asyncio.gather(
            *(self._evict_one(e, rollout=rollout, owner=owner) for e in evictions)
        )
        return {agent: why for agent, why in results if why is not None}

    async def _evict_one(
        self, eviction: residency.Eviction, *, rollout: str, owner: ownership.Owner | None
    ) -> tuple[str, str | None]:
        agent = eviction.agent
        problem = await self.remove_model(agent, model=eviction.model, rollout=rollout, owner=owner)
        return agent, str(problem) if problem is not None else None

    async def remove_model(
        self, agent: str, *, model: str, rollout: str, owner: ownership.Owner | None = None
    ) -> EdgewaveError | None:
        """Remove every version of `model` from `agent`: the error, or None when done.

        Versions the agent may drop are removed one by one; when the model still serves
        (active or previous version), the agent's whole-model removal unloads and deletes
        the rest.
        """
        async with self._limit:
            held = self._links.held(agent, model)
            serving = {
                edgeagent.HeldModelState.ACTIVE,
                edgeagent.HeldModelState.STANDBY,
                edgeagent.HeldModelState.LOADING,
            }
            problem: EdgewaveError | None = None
            try:
                client = await self._links.link(agent)
                for version in held:
                    if version.state not in serving:
                        await client.remove(
                            model, version=version.version, rollout=rollout, owner=owner
                        )
                if any(version.state in serving for version in held):
                    await client.remove_model(model, rollout=rollout, owner=owner)
            except EdgewaveError as error:
                log.warning("removing %s from %s: %s", model, agent, error, extra={"agent": agent})
                problem = error
            finally:
                with contextlib.suppress(EdgewaveError):
                    await self._links.refresh(agent)
            return problem
