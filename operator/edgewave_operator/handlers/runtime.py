"""Everything the handlers share, built once per operator process and passed in kopf's memo.

No globals: the API client, trust material, inventory, executor, compiler and the
per-rollout wake-up events live here, so two operators in one process (tests) never mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client as kube_client

from edgewave_compiler import cache, compiling
from edgewave_operator import certs
from edgewave_operator import metrics as operator_metrics
from edgewave_operator.handlers import compiling as engine_builds
from edgewave_operator.handlers import execution, policies
from edgewave_operator.handlers.inventory import Inventory, utcnow
from edgewave_operator.settings import OperatorSettings


@dataclass
class Runtime:
    settings: OperatorSettings
    api: kube_client.ApiClient
    trust: certs.TrustMaterial
    compiler: compiling.Compiler
    builds: engine_builds.EngineBuilds
    metrics: operator_metrics.OperatorMetrics = field(
        default_factory=operator_metrics.OperatorMetrics
    )
    inventory: Inventory = field(init=False)
    executor: execution.Executor = field(init=False)
    policy_statuses: policies.PolicyStatuses = field(init=False)
    clock: Callable[[], datetime.datetime] = utcnow
    wakers: dict[str, asyncio.Event] = field(default_factory=dict)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set to stop the operator (leadership lost, or kopf is shutting down)."""
    metrics_server: Any = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.inventory = Inventory(
            api=self.api,
            settings=self.settings,
            trust=self.trust,
            on_change=lambda _name: self.wake_all(),
            clock=self.clock,
            metrics=self.metrics,
        )
        self.executor = execution.Executor(
            inventory=self.inventory, settings=self.settings, metrics=self.metrics
        )
        self.builds.agent_builder = self.executor.build_on_agent
        self.policy_statuses = policies.PolicyStatuses(
            api=self.api,
            inventory=self.inventory,
            period=self.settings.reconcile_period_seconds,
            min_interval=self.settings.status_min_interval_seconds,
            clock=self.clock,
        )

    @classmethod
    async def start(cls, settings: OperatorSettings, api: kube_client.ApiClient) -> Runtime:
        trust = await certs.load(
            api,
            namespace=settings.namespace,
            ca_secret=settings.ca_secret,
            signing_secret=settings.signing_secret,
            trust_domain=settings.trust_domain,
        )
        engine_cache = cache.EngineCache(settings.cache_dir / "engines")
        compiler = compiling.Compiler(engine_cache, max_workers=settings.max_build_workers)
        metrics = operator_metrics.OperatorMetrics()
        builds = engine_builds.EngineBuilds(
            compiler=compiler,
            models_dir=settings.cache_dir / "models",
            metrics=metrics,
            central=settings.central_builds,
        )
        runtime = cls(
            settings=settings, api=api, trust=trust, compiler=compiler, builds=builds,
            metrics=metrics,
        )  # fmt: skip
        if settings.metrics_port is not None:
            runtime.metrics_server = metrics.serve(port=settings.metrics_port)
        runtime._tasks.append(asyncio.create_task(runtime.inventory.run(), name="inventory"))
        runtime._tasks.append(
            asyncio.create_task(runtime.policy_statuses.run(), name="policy-statuses")
        )
        return runtime

    def waker(self, uid: str) -> asyncio.Event:
        return self.wakers.setdefault(uid, asyncio.Event())

    def wake(self, uid: str) -> None:
        self.waker(uid).set()

    def wake_all(self) -> None:
        for event in self.wakers.values():
            event.set()
        self.policy_statuses.changed()

    async def close_tasks(self) -> None:
        """Stop probing agents (and close their channels)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def close(self, *, api: bool = True) -> None:
        """Stop everything; `api=False` leaves the API client open (its owner closes it)."""
        await self.close_tasks()
        if self.metrics_server is not None:
            self.metrics_server.close()
        await self.compiler.close()
        if api:
            await self.api.close()
