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

from edgewave_api import edgeagent, renewal
from edgewave_compiler import cache, compiling, fetching
from edgewave_operator import certs
from edgewave_operator import metrics as operator_metrics
from edgewave_operator.agents import client as agent_client
from edgewave_operator.agents import embedding, executing, gatewayed
from edgewave_operator.agents.inventory import Inventory, utcnow
from edgewave_operator.compiling import engines as engine_builds
from edgewave_operator.handlers import policies
from edgewave_operator.kube import records
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
    gateways: gatewayed.Gateways = field(init=False)
    embedded_gateway: Any = None
    """The gateway this process runs (`edgewave_gateway.server.Gateway`), if any."""
    executor: executing.Executor = field(init=False)
    policy_statuses: policies.PolicyStatuses = field(init=False)
    clock: Callable[[], datetime.datetime] = utcnow
    wakers: dict[str, asyncio.Event] = field(default_factory=dict)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set to stop the operator (leadership lost, or kopf is shutting down)."""
    metrics_server: Any = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        credentials = self.trust.credentials
        self.gateways = gatewayed.Gateways(
            tls=agent_client.ClientTls(
                ca_pem=credentials.ca_pem,
                cert_pem=credentials.client.cert_pem,
                key_pem=credentials.client.key_pem,
            ),
            on_change=lambda name: self.inventory.session_changed(name),  # noqa: PLW0108  # made below
            chunk_bytes=self.settings.push_chunk_bytes,
            renew_tls=None if self.settings.insecure_agents else self.own_tls,
        )
        for name, address in self.settings.gateways.items():
            self.gateways.add(name, address)
        self.inventory = Inventory(
            records=records.AgentRecords(self.api, clock=self.clock),
            settings=self.settings,
            tls_for=self.tls_for,
            signing_key_pem=self.trust.signing_key.private_pem,
            renew_tls_for=self.renew_tls_for,
            on_change=lambda _name: self.wake_all(),
            clock=self.clock,
            metrics=self.metrics,
            gateways=self.gateways,
            certify=None if self.settings.insecure_agents else self.certify_agent,
        )
        self.executor = executing.Executor(
            links=self.inventory, settings=self.settings, metrics=self.metrics
        )
        self.builds.agent_builder = self.executor.build_on_agent
        self.policy_statuses = policies.PolicyStatuses(
            api=self.api,
            inventory=self.inventory,
            period=self.settings.reconcile_period_seconds,
            min_interval=self.settings.status_min_interval_seconds,
            clock=self.clock,
        )

    async def tls_for(self, agent: edgeagent.EdgeAgent) -> agent_client.ClientTls | None:
        """The operator's client certificate for `agent` (its own Secret's, if it names one)."""
        if self.settings.insecure_agents:
            return None
        credentials = self.trust.credentials
        ref = agent.spec.tls_secret_ref
        if ref is not None:
            credentials = await certs.from_secret_ref(
                self.api, namespace=ref.namespace, name=ref.name
            )
        return agent_client.ClientTls(
            ca_pem=credentials.ca_pem,
            cert_pem=credentials.client.cert_pem,
            key_pem=credentials.client.key_pem,
        )

    def own_tls(self) -> agent_client.ClientTls:
        """The operator's CA and its own client certificate as of now (renewed when due)."""
        credentials = self.trust.credentials
        return agent_client.ClientTls(
            ca_pem=credentials.ca_pem,
            cert_pem=credentials.client.cert_pem,
            key_pem=credentials.client.key_pem,
        )

    def certify_agent(self, request: renewal.RenewalRequest) -> bytes:
        """The operator's CA renewing an agent's certificate (checked in `renewal.sign`)."""
        _identity, cert_pem = renewal.sign(
            self.trust.ca, request, trust_domain=self.settings.trust_domain, now=self.clock()
        )
        return cert_pem

    def renew_tls_for(
        self, agent: edgeagent.EdgeAgent
    ) -> Callable[[], agent_client.ClientTls] | None:
        """The operator's own certificate is renewed as it ages; a Secret's is not ours."""
        if self.settings.insecure_agents or agent.spec.tls_secret_ref is not None:
            return None
        return self.own_tls

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
        compiler = compiling.Compiler(
            engine_cache,
            max_workers=settings.max_build_workers,
            fetch_policy=fetching.FetchPolicy(
                max_bytes=settings.max_model_bytes,
                deadline_s=settings.model_fetch_deadline_seconds,
                file_root=settings.model_root,
            ),
        )
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
        if settings.gateway_listen:
            runtime.embedded_gateway = await embedding.start(
                settings, ca=trust.ca, ca_pem=trust.credentials.ca_pem
            )
            runtime.gateways.add(
                settings.gateway_name,
                embedding.address(runtime.embedded_gateway, listen=settings.gateway_listen or ""),
            )
        runtime._tasks.append(asyncio.create_task(runtime.gateways.run(), name="gateways"))
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
        if self.embedded_gateway is not None:
            await self.embedded_gateway.stop(grace=1.0)
            self.embedded_gateway = None
        if self.metrics_server is not None:
            self.metrics_server.close()
        await self.compiler.close()
        if api:
            await self.api.close()
