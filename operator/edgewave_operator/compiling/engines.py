"""Engines for a rollout's targets: fetch the model once, plan the builds, build or reuse.

Thin glue over `edgewave_compiler`: the model is fetched and its sha256 verified, the
compiler's pure planner maps each target's reported GPU and runtimes to a build key, and
each distinct key is built once (or found in the cache) off the event loop by the
compiler's process pool. Targets no central builder serves (Jetson, Hopper, a runtime
version it does not match) build their own engine: the ONNX model is pushed to the agent
and its `Build` reports the digest, recorded in the cache as built there. The result says
which engine each agent gets, which agents no allowed backend can serve (excluded as
NoCompatibleBackend) or failed to build (AgentBuildFailed), and the engines for status.
Results are memoized per (model, build spec, platforms) so a reconcile that changes
nothing costs nothing; cancelling the caller cancels builds no one else waits for.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from edgewave_api import edgeagent, modelrollout
from edgewave_api.errors import PermanentError, TemporaryError
from edgewave_api.telemetry import spans
from edgewave_compiler import cache, compiling, keys
from edgewave_compiler import planning as compile_planning
from edgewave_operator import metrics as operator_metrics
from edgewave_operator.planning import builds, parsing, views

MAX_AGENT_ENGINE_ENTRIES = 16
"""Engines built on agents listed in a rollout's status (one per agent), at most."""


class AgentBuilder(Protocol):
    """Has `agent` build `key` from the ONNX file; `Executor.build_on_agent`."""

    def __call__(
        self, agent: str, *, key: keys.BuildKey, model_path: Path
    ) -> Awaitable[AgentBuilt]: ...


AgentBuilt = builds.AgentBuilt
Engines = builds.Engines


_DISCOVER = """
import dataclasses, json
from edgewave_compiler import backends
print(json.dumps([
    {**dataclasses.asdict(b), "compute_capabilities": sorted(b.compute_capabilities)}
    for b in backends.central_builders()
]))
"""


async def discover_builders() -> tuple[compile_planning.CentralBuilder, ...]:
    """The central builders this host offers, found in a child process.

    Loading the toolchains (TensorRT-RTX, ONNX Runtime) costs over 100 MiB; only the build
    workers need them, so the operator asks a short-lived child instead of importing them.
    """
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _DISCOVER, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await child.communicate()
    if child.returncode != 0:
        raise TemporaryError(
            f"listing the engine builders failed ({err.decode(errors='replace')[-300:]}); retrying",
            retry_after=10.0,
        )
    return tuple(
        compile_planning.CentralBuilder(
            backend=keys.Backend(item["backend"]),
            version=item["version"],
            compute_capabilities=frozenset(item["compute_capabilities"]),
            hardware_compatibility=item["hardware_compatibility"],
        )
        for item in json.loads(out)
    )


def _key_name(key: keys.BuildKey) -> str:
    target = f"sm{key.compute_capability}" if key.compute_capability else "portable"
    return f"{key.backend.value.lower()}-{target}-{key.precision.value.lower()}-{key.digest()[:12]}"


@dataclass
class _Found:
    """What the builds of one `engines_for` call produced so far."""

    by_agent: dict[str, views.EngineRef] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    statuses: list[modelrollout.EngineStatus] = field(default_factory=list)
    build_failed: dict[str, str] = field(default_factory=dict)
    built: int = 0


class EngineBuilds:
    def __init__(
        self,
        *,
        compiler: compiling.Compiler,
        models_dir: Path,
        metrics: operator_metrics.OperatorMetrics | None = None,
        central: bool = True,
        builders: tuple[compile_planning.CentralBuilder, ...] | None = None,
    ) -> None:
        """`builders`: the central builders to plan with (None: ask this host once)."""
        self._metrics = metrics
        self._central = central
        self._compiler = compiler
        self._models_dir = models_dir
        self._memo: dict[str, tuple[object, Engines]] = {}
        self._builders = builders
        self.agent_builder: AgentBuilder | None = None

    async def engines_for(
        self,
        *,
        uid: str,
        spec: modelrollout.ModelRolloutSpec,
        platforms: Mapping[str, edgeagent.EdgeAgentStatus],
    ) -> Engines:
        """The engine of every agent in `platforms` (name -> its reported status)."""
        targets = {
            name: compile_planning.platform_from_agent(status) for name, status in platforms.items()
        }
        memo_key = (
            spec.model.model_dump_json(),
            spec.build.model_dump_json(),
            tuple(sorted((name, t.signature()) for name, t in targets.items())),
        )
        cached = self._memo.get(uid)
        if cached is not None and cached[0] == memo_key:
            return cached[1]
        if self._builders is None:
            self._builders = await discover_builders() if self._central else ()
        plan = compile_planning.plan_rollout(spec, statuses=platforms, builders=self._builders)
        model_path = self._models_dir
        if plan.builds:
            model_path = await self._compiler.fetch_model(
                spec.model.uri, sha256=spec.model.sha256, dest_dir=self._models_dir
            )
        found = _Found()
        await self._build_central(
            plan.central, spec=spec, uid=uid, model_path=model_path, into=found
        )
        await self._build_on_agents(
            plan.on_agents, model_path=model_path, into=found,
            room=len(plan.central) + MAX_AGENT_ENGINE_ENTRIES,
        )  # fmt: skip
        engines = Engines(
            by_agent=found.by_agent,
            paths=found.paths,
            statuses=tuple(sorted(found.statuses, key=lambda s: s.key)),
            refused=dict(plan.unservable),
            build_failed=found.build_failed,
            built=found.built,
        )
        self._memo[uid] = (memo_key, engines)
        return engines

    async def _build_central(
        self,
        central: tuple[compile_planning.PlannedBuild, ...],
        *,
        spec: modelrollout.ModelRolloutSpec,
        uid: str,
        model_path: Path,
        into: _Found,
    ) -> None:
        """Build (or find in the cache) each central engine once, concurrently."""

        async def ensure(build: compile_planning.PlannedBuild) -> cache.EngineRecord:
            with spans.compile(
                model=spec.model.name,
                version=spec.model.version,
                backend=build.key.backend.value,
                compute_capability=build.key.compute_capability,
            ):
                record = await self._compiler.ensure_engine(build.key, model_path, rollout_uid=uid)
                spans.annotate(cache_hit=record.cache_hit)
                return record

        records = await asyncio.gather(*(ensure(build) for build in central))
        for build, record in zip(central, records, strict=True):
            digest = record.engine_digest.removeprefix("sha256:")
            if record.engine_path is not None:
                into.paths[digest] = record.engine_path
            backend = modelrollout.Backend(build.key.backend.value)
            for agent in build.agents:
                into.by_agent[agent] = views.EngineRef(
                    digest=digest, backend=backend.value, size=record.size_bytes
                )
            into.built += 0 if record.cache_hit else 1
            if self._metrics is not None:
                self._metrics.compile_finished(
                    backend=backend.value,
                    cache_hit=record.cache_hit,
                    seconds=None if record.cache_hit else record.build_seconds,
                )
            into.statuses.append(
                modelrollout.EngineStatus(
                    key=_key_name(build.key),
                    backend=backend,
                    compute_capability=build.key.compute_capability,
                    digest=parsing.prefixed(digest),
                    size_bytes=record.size_bytes,
                    build_seconds=None if record.cache_hit else record.build_seconds,
                )
            )

    async def _build_on_agents(
        self,
        on_agents: tuple[compile_planning.PlannedBuild, ...],
        *,
        model_path: Path,
        into: _Found,
        room: int,
    ) -> None:
        """Have each agent build its own engine, one after the other; `room`: most statuses."""
        for build in on_agents:
            for agent in build.agents:
                try:
                    record = await self._on_agent(build.key, agent=agent, model_path=model_path)
                except PermanentError as error:
                    into.build_failed[agent] = str(error)
                    continue
                into.built += 0 if record.cache_hit else 1
                digest = record.engine_digest.removeprefix("sha256:")
                backend = modelrollout.Backend(build.key.backend.value)
                into.by_agent[agent] = views.EngineRef(
                    digest=digest, backend=backend.value, size=record.size_bytes, local=True
                )
                if len(into.statuses) < room:
                    into.statuses.append(
                        modelrollout.EngineStatus(
                            key=f"{_key_name(build.key)}-{agent}"[:253],
                            backend=backend,
                            compute_capability=build.key.compute_capability,
                            digest=parsing.prefixed(digest),
                            size_bytes=record.size_bytes,
                            build_seconds=record.build_seconds,
                            built_on=modelrollout.BuildLocation.AGENT,
                            agent=agent,
                        )
                    )

    async def _on_agent(
        self, key: keys.BuildKey, *, agent: str, model_path: Path
    ) -> cache.EngineRecord:
        """The engine `agent` built for itself: recorded before, or built now."""
        engine_cache = self._compiler.cache
        recorded = await asyncio.to_thread(engine_cache.agent_build, key, agent=agent)
        if recorded is not None:
            return recorded.model_copy(update={"cache_hit": True})
        if self.agent_builder is None:
            raise PermanentError(
                f"agent {agent} must build its own engine but this operator has no agent "
                "builder wired; allow a backend a central builder serves"
            )
        with spans.compile(
            model=key.model_sha256[:12],
            version="",
            backend=key.backend.value,
            compute_capability=key.compute_capability,
        ):
            reply = await self.agent_builder(agent, key=key, model_path=model_path)
        return await asyncio.to_thread(
            engine_cache.record_agent_build,
            key,
            agent=agent,
            engine_digest=reply.digest,
            size_bytes=reply.size_bytes,
            build_seconds=reply.build_seconds,
            log=reply.log,
        )

    def forget(self, uid: str) -> None:
        self._memo.pop(uid, None)
        self._compiler.cache.release(uid)
