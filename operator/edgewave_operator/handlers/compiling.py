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
from edgewave_operator.handlers import describing
from edgewave_operator.planning import views

MAX_AGENT_ENGINE_ENTRIES = 16
"""Engines built on agents listed in a rollout's status (one per agent), at most."""


@dataclass(frozen=True)
class AgentBuilt:
    """What an agent reported after building an engine for itself."""

    digest: str
    size_bytes: int
    build_seconds: float
    log: str = ""


class AgentBuilder(Protocol):
    """Has `agent` build `key` from the ONNX file; `Executor.build_on_agent`."""

    def __call__(
        self, agent: str, *, key: keys.BuildKey, model_path: Path
    ) -> Awaitable[AgentBuilt]: ...


@dataclass(frozen=True)
class Engines:
    by_agent: Mapping[str, views.EngineRef]
    paths: Mapping[str, Path]
    """Engine digest (bare hex) -> file to push."""
    statuses: tuple[modelrollout.EngineStatus, ...]
    refused: Mapping[str, str] = field(default_factory=dict)
    """Agent -> why no allowed backend can serve it (NoCompatibleBackend)."""
    build_failed: Mapping[str, str] = field(default_factory=dict)
    """Agent -> why building an engine on it failed (AgentBuildFailed)."""
    built: int = 0


def platform(status: edgeagent.EdgeAgentStatus) -> compile_planning.TargetPlatform:
    return compile_planning.TargetPlatform(
        compute_capability=status.gpu.compute_capability if status.gpu else None,
        runtimes={runtime.name: runtime.version for runtime in status.runtimes},
    )


def build_request(spec: modelrollout.ModelRolloutSpec) -> compile_planning.BuildRequest:
    build = spec.build
    return compile_planning.BuildRequest(
        model_sha256=spec.model.sha256,
        backends=[keys.Backend(b.value) for b in build.backends],
        precision=keys.Precision(build.precision.value),
        profiles=[
            keys.ShapeProfile(input=p.input, min=tuple(p.min), opt=tuple(p.opt), max=tuple(p.max))
            for p in build.profiles or []
        ],
        workspace_bytes=build.max_workspace_mib * (1 << 20) if build.max_workspace_mib else None,
    )


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


class EngineBuilds:
    def __init__(
        self,
        *,
        compiler: compiling.Compiler,
        models_dir: Path,
        metrics: operator_metrics.OperatorMetrics | None = None,
        central: bool = True,
    ) -> None:
        self._metrics = metrics
        self._central = central
        self._compiler = compiler
        self._models_dir = models_dir
        self._memo: dict[str, tuple[object, Engines]] = {}
        self._builders: tuple[compile_planning.CentralBuilder, ...] | None = None
        self.agent_builder: AgentBuilder | None = None

    async def engines_for(
        self,
        *,
        uid: str,
        spec: modelrollout.ModelRolloutSpec,
        platforms: Mapping[str, edgeagent.EdgeAgentStatus],
    ) -> Engines:
        """The engine of every agent in `platforms` (name -> its reported status)."""
        targets = {name: platform(status) for name, status in platforms.items()}
        memo_key = (
            spec.model.model_dump_json(),
            spec.build.model_dump_json(),
            tuple(sorted((name, t.signature()) for name, t in targets.items())),
        )
        cached = self._memo.get(uid)
        if cached is not None and cached[0] == memo_key:
            return cached[1]
        request = build_request(spec)
        if self._builders is None:
            self._builders = await discover_builders() if self._central else ()
        builders = self._builders
        plan = compile_planning.plan_builds(targets=targets, request=request, builders=builders)
        refused = dict(plan.unservable)
        central = plan.central
        records = []
        model_path = self._models_dir
        if central or plan.on_agents:
            model_path = await self._compiler.fetch_model(
                spec.model.uri, sha256=spec.model.sha256, dest_dir=self._models_dir
            )
        if central:

            async def ensure(build: compile_planning.PlannedBuild) -> cache.EngineRecord:
                with spans.compile(
                    model=spec.model.name,
                    version=spec.model.version,
                    backend=build.key.backend.value,
                    compute_capability=build.key.compute_capability,
                ):
                    record = await self._compiler.ensure_engine(
                        build.key, model_path, rollout_uid=uid
                    )
                    spans.annotate(cache_hit=record.cache_hit)
                    return record

            records = await asyncio.gather(*(ensure(build) for build in central))
        by_agent: dict[str, views.EngineRef] = {}
        paths: dict[str, Path] = {}
        statuses: list[modelrollout.EngineStatus] = []
        built = 0
        for build, record in zip(central, records, strict=True):
            digest = record.engine_digest.removeprefix("sha256:")
            if record.engine_path is not None:
                paths[digest] = record.engine_path
            backend = modelrollout.Backend(build.key.backend.value)
            for agent in build.agents:
                by_agent[agent] = views.EngineRef(
                    digest=digest, backend=backend.value, size=record.size_bytes
                )
            built += 0 if record.cache_hit else 1
            if self._metrics is not None:
                self._metrics.compile_finished(
                    backend=backend.value,
                    cache_hit=record.cache_hit,
                    seconds=None if record.cache_hit else record.build_seconds,
                )
            statuses.append(
                modelrollout.EngineStatus(
                    key=_key_name(build.key),
                    backend=backend,
                    compute_capability=build.key.compute_capability,
                    digest=describing.prefixed(digest),
                    size_bytes=record.size_bytes,
                    build_seconds=None if record.cache_hit else record.build_seconds,
                )
            )
        build_failed: dict[str, str] = {}
        for build in plan.on_agents:
            for agent in build.agents:
                try:
                    record = await self._on_agent(build.key, agent=agent, model_path=model_path)
                except PermanentError as error:
                    build_failed[agent] = str(error)
                    continue
                built += 0 if record.cache_hit else 1
                digest = record.engine_digest.removeprefix("sha256:")
                backend = modelrollout.Backend(build.key.backend.value)
                by_agent[agent] = views.EngineRef(
                    digest=digest, backend=backend.value, size=record.size_bytes, local=True
                )
                if len(statuses) < len(central) + MAX_AGENT_ENGINE_ENTRIES:
                    statuses.append(
                        modelrollout.EngineStatus(
                            key=f"{_key_name(build.key)}-{agent}"[:253],
                            backend=backend,
                            compute_capability=build.key.compute_capability,
                            digest=describing.prefixed(digest),
                            size_bytes=record.size_bytes,
                            build_seconds=record.build_seconds,
                            built_on=modelrollout.BuildLocation.AGENT,
                            agent=agent,
                        )
                    )
        engines = Engines(
            by_agent=by_agent,
            paths=paths,
            statuses=tuple(sorted(statuses, key=lambda s: s.key)),
            refused=refused,
            build_failed=build_failed,
            built=built,
        )
        self._memo[uid] = (memo_key, engines)
        return engines

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
