"""The live fleet: every EdgeAgent probed with `Describe` on a timer, with backoff.

One loop serves all agents (no per-agent kopf daemon, which would mean a finalizer write
per agent): each agent has a next-probe time; answers reset it to the probe interval,
failures back off exponentially up to a ceiling. What an agent answered in this process
is kept in memory (`live`) and is what rollouts plan against; it is written to the
EdgeAgent's status only when something changed or once per coarse period
(`planning.heartbeats`). Significant changes wake the rollouts (`on_change`).

It is also the `links.Links` the executor acts through. An agent with `spec.endpoint` is on
a flat network and dialled directly (`AgentClient`, the thin direct mode); one without is
reached only through the gateway holding its live session (`gatewayed`): with no session it
is not dialled at all, it reads as disconnected at once, and a new session wakes its probe.
Either way `status.connection` says how it is reached. What it writes to the cluster goes
through `Records` and the TLS material of each agent comes from `tls_for`, both given by
the runtime, so this package never imports the Kubernetes client.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from edgewave_api import edgeagent, renewal
from edgewave_api.errors import EdgewaveError
from edgewave_operator import metrics as operator_metrics
from edgewave_operator.agents import client as agent_client
from edgewave_operator.agents import describing, errors, gatewayed, links
from edgewave_operator.planning import heartbeats, parsing
from edgewave_operator.planning import views as planning_views
from edgewave_operator.settings import OperatorSettings
from edgewave_proto.agent.v1 import agent_pb2 as pb

log = logging.getLogger(__name__)
Clock = Callable[[], datetime.datetime]
TlsFor = Callable[[edgeagent.EdgeAgent], Awaitable[agent_client.ClientTls | None]]
"""The client TLS material to reach an agent (None: plaintext, `insecure_agents`)."""
Certify = Callable[[renewal.RenewalRequest], bytes]
"""The operator's CA checking and signing an agent's renewal request (`renewal.sign`)."""
RenewTlsFor = Callable[[edgeagent.EdgeAgent], Callable[[], agent_client.ClientTls] | None]
"""How a client to an agent picks up a renewed certificate (None: its TLS never changes)."""


class Records(Protocol):
    """Where the inventory writes what it learns (the EdgeAgent objects, in the operator)."""

    async def write_status(
        self, name: str, *, old: Mapping[str, Any] | None, new: Mapping[str, Any]
    ) -> None:
        """Patch EdgeAgent `name`'s status from `old` to `new` (raises EdgewaveError)."""
        ...

    async def warn(self, agent: edgeagent.EdgeAgent, *, reason: str, message: str) -> None:
        """Post a Warning Event about `agent`."""
        ...


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Inventory:
    def __init__(
        self,
        *,
        records: Records,
        settings: OperatorSettings,
        tls_for: TlsFor,
        signing_key_pem: bytes,
        renew_tls_for: RenewTlsFor = lambda _agent: None,
        on_change: Callable[[str], None],
        clock: Clock = utcnow,
        metrics: operator_metrics.OperatorMetrics | None = None,
        gateways: gatewayed.Gateways | None = None,
        certify: Certify | None = None,
    ) -> None:
        """`certify`: renew agents' certificates with it when due (None: never)."""
        self._certify = certify
        self._metrics = metrics
        self.gateways = gateways
        self._records = records
        self._settings = settings
        self._tls_for = tls_for
        self._renew_tls_for = renew_tls_for
        self._signing_key_pem = signing_key_pem
        self._on_change = on_change
        self._clock = clock
        self.specs: dict[str, edgeagent.EdgeAgent] = {}
        self.live: dict[str, edgeagent.EdgeAgentStatus] = {}
        self._written: dict[str, edgeagent.EdgeAgentStatus | None] = {}
        self._written_at: dict[str, datetime.datetime] = {}
        self._clients: dict[str, agent_client.AgentClient] = {}
        # The gateway each cached client goes through ("" for a direct one).
        self._via: dict[str, str] = {}
        self._due: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._probing: set[str] = set()
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(settings.probe_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self.status_writes = 0

    # -- fleet membership (from the EdgeAgent watch) -------------------------------------

    def upsert(self, agent: edgeagent.EdgeAgent) -> None:
        name = agent.metadata.name or ""
        before = self.specs.get(name)
        self.specs[name] = agent
        if name not in self._written:
            self._written[name] = agent.status
        if before is None or _connection(before) != _connection(agent):
            self._drop_client(name)
            self._schedule(name, delay=0.0)
        elif before.spec != agent.spec or before.metadata.labels != agent.metadata.labels:
            self._on_change(name)

    def forget(self, name: str) -> None:
        self.specs.pop(name, None)
        self.live.pop(name, None)
        self._written.pop(name, None)
        self._written_at.pop(name, None)
        self._due.pop(name, None)
        self._failures.pop(name, None)
        self._drop_client(name)
        if self._metrics is not None:
            self._metrics.forget_agent(name)
        self._on_change(name)

    def session_changed(self, name: str) -> None:
        """An agent's gateway session began, ended or moved: probe it now."""
        if name in self.specs and not self.specs[name].spec.endpoint:
            self._failures.pop(name, None)
            self._schedule(name, delay=0.0)

    def _drop_client(self, name: str) -> None:
        self._via.pop(name, None)
        old = self._clients.pop(name, None)
        if old is not None:
            task = asyncio.ensure_future(old.close())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _schedule(self, name: str, *, delay: float) -> None:
        self._due[name] = time.monotonic() + delay
        self._wake.set()

    # -- what rollouts read ----------------------------------------------------------------

    def view(self, agent: edgeagent.EdgeAgent) -> planning_views.AgentView:
        name = agent.metadata.name or ""
        live = self.live.get(name)
        return parsing.agent_view(agent, status=live, observed=live is not None)

    def views(self, agents: Iterable[edgeagent.EdgeAgent]) -> list[planning_views.AgentView]:
        return [self.view(agent) for agent in agents]

    def view_of(self, name: str) -> planning_views.AgentView | None:
        """Agent `name` as it is now (None once its EdgeAgent is gone)."""
        agent = self.specs.get(name)
        return self.view(agent) if agent is not None else None

    # -- links.Links ---------------------------------------------------------------------

    async def link(self, name: str) -> links.Link:
        return await self.client(name)

    def region_of(self, name: str) -> str:
        agent = self.specs.get(name)
        return agent.spec.region if agent else ""

    def held(self, name: str, model: str) -> tuple[edgeagent.HeldModel, ...]:
        live = self.live.get(name)
        return tuple(m for m in (live.models if live else []) if m.name == model)

    def session_of(self, name: str) -> gatewayed.Session | None:
        """The live gateway session of an agent that has no endpoint (None: none, or direct)."""
        agent = self.specs.get(name)
        if agent is None or agent.spec.endpoint or self.gateways is None:
            return None
        return self.gateways.session_of(name)

    async def client(self, name: str) -> agent_client.AgentClient:
        agent = self.specs[name]
        endpoint = agent.spec.endpoint
        session = None if endpoint else self.session_of(name)
        if not endpoint and session is None:
            raise errors.AgentUnavailable(
                f"agent {name} has no session on any gateway: it has no spec.endpoint, so it"
                " must dial one (edgewave-agent serve --gateway HOST:PORT)"
            )
        via = session.gateway if session is not None else ""
        existing = self._clients.get(name)
        if existing is not None and self._via.get(name) == via:
            return existing
        if existing is not None:
            self._drop_client(name)
        made: agent_client.AgentClient
        if session is not None and self.gateways is not None:
            made = self.gateways.link(
                name,
                session=session,
                signing_key_pem=self._signing_key_pem,
                timeout=self._settings.rpc_timeout_seconds,
            )
        else:
            tls = await self._tls_for(agent)
            made = agent_client.AgentClient(
                endpoint or "",
                tls=tls,
                # The operator's own certificate is renewed as it ages; a Secret's is not ours.
                renew_tls=self._renew_tls_for(agent) if tls else None,
                signing_key_pem=self._signing_key_pem,
                chunk_bytes=self._settings.push_chunk_bytes,
                timeout=self._settings.rpc_timeout_seconds,
                name=name,
            )
        self._clients[name] = made
        self._via[name] = via
        return made

    # -- probing ---------------------------------------------------------------------------

    async def refresh(self, name: str) -> edgeagent.EdgeAgentStatus | None:
        """Describe `name` now (after acting on it); returns what it said."""
        if name not in self.specs:
            return None
        await self._probe(name)
        return self.live.get(name)

    async def run(self) -> None:
        """Probe every agent when due, forever (cancel to stop)."""
        try:
            while True:
                now = time.monotonic()
                for name, due in list(self._due.items()):
                    if due <= now and name not in self._probing and name in self.specs:
                        self._probing.add(name)
                        task = asyncio.create_task(self._probe_guarded(name))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                waiting = [d for n, d in self._due.items() if n not in self._probing]
                delay = max(0.0, min(waiting, default=now + 1.0) - now)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=min(delay, 5.0))
        finally:
            for task in list(self._tasks):
                task.cancel()
            for agent in list(self._clients.values()):
                with contextlib.suppress(Exception):
                    await agent.close()

    async def _probe_guarded(self, name: str) -> None:
        try:
            async with self._limit:
                await self._probe(name)
        except Exception:
            log.exception("probing agent %s failed unexpectedly", name)
            self._schedule(name, delay=self._settings.probe_interval_seconds)
        finally:
            self._probing.discard(name)

    async def _probe(self, name: str) -> None:
        agent = self.specs.get(name)
        if agent is None:
            return
        generation = agent.metadata.generation
        previous = self.live.get(name) or self._written.get(name)
        try:
            client = await self.client(name)
            answer = await client.describe()
        except EdgewaveError as error:
            status = describing.unreachable(
                previous=previous, error=str(error), generation=generation, now=self._clock()
            )
            failures = self._failures.get(name, 0) + 1
            self._failures[name] = failures
            delay = heartbeats.probe_delay(
                failures=failures,
                interval=self._settings.probe_interval_seconds,
                ceiling=self._settings.probe_max_backoff_seconds,
            )
        else:
            status = describing.from_describe(
                answer, previous=previous, generation=generation, now=self._clock()
            )
            self._failures.pop(name, None)
            delay = self._settings.probe_interval_seconds
            await self._renew_certificate_if_due(agent, client, answer)
        status = status.model_copy(
            update={"connection": self._connection(agent, previous=previous, status=status)}
        )
        before = self.live.get(name)
        self.live[name] = status
        if self._metrics is not None:
            self._metrics.set_agent_reachable(
                agent=name, region=agent.spec.region, reachable=name not in self._failures
            )
        if name in self.specs:
            self._schedule(name, delay=delay)
        if before is None or heartbeats.significant(before) != heartbeats.significant(status):
            await self._audit_location(agent, before=before, status=status)
            self._on_change(name)
        await self._maybe_write(name, status)

    async def _renew_certificate_if_due(
        self,
        agent: edgeagent.EdgeAgent,
        client: agent_client.AgentClient,
        answer: pb.DescribeResponse,
    ) -> None:
        """Renew the agent's certificate over its link once a third of its life is left.

        Only for agents under the operator's CA (no `tlsSecretRef` of their own). A failure
        is a Warning Event and is tried again at the next probe; the agent keeps serving
        with its current certificate until it expires.
        """
        not_after = answer.certificate_not_after_unix_seconds
        if self._certify is None or agent.spec.tls_secret_ref is not None or not not_after:
            return
        validity = (
            datetime.datetime.fromtimestamp(
                answer.certificate_not_before_unix_seconds, datetime.UTC
            ),
            datetime.datetime.fromtimestamp(not_after, datetime.UTC),
        )
        if not renewal.due_between(*validity, now=self._clock()):
            return
        name = agent.metadata.name
        try:
            expires = await client.renew_certificate(self._certify)
        except EdgewaveError as error:
            message = (
                f"agent {name}: its certificate (expiring {validity[1]:%Y-%m-%dT%H:%M:%SZ})"
                f" was not renewed: {error}"
            )
            log.warning("%s", message)
            await self._records.warn(agent, reason="CertificateRenewalFailed", message=message)
            return
        log.info("agent %s: certificate renewed over its link, valid until %s", name, expires)

    def _connection(
        self,
        agent: edgeagent.EdgeAgent,
        *,
        previous: edgeagent.EdgeAgentStatus | None,
        status: edgeagent.EdgeAgentStatus,
    ) -> edgeagent.AgentConnection:
        name = agent.metadata.name or ""
        now = self._clock()
        if agent.spec.endpoint:
            answered = name not in self._failures
            return describing.connection(
                previous, connected=answered, gateway=None, session_since=None, now=now
            )
        session = self.session_of(name)
        if session is None:
            last = previous.connection.gateway if previous and previous.connection else None
            return describing.connection(
                previous, connected=False, gateway=last, session_since=None, now=now
            )
        return describing.connection(
            previous, connected=True, gateway=session.gateway, session_since=session.since, now=now
        )

    async def _audit_location(
        self,
        agent: edgeagent.EdgeAgent,
        *,
        before: edgeagent.EdgeAgentStatus | None,
        status: edgeagent.EdgeAgentStatus,
    ) -> None:
        claimed = status.reported_region
        if claimed is None or claimed == agent.spec.region:
            return
        if before is not None and before.reported_region == claimed:
            return
        message = (
            f"agent {agent.metadata.name} reports region {claimed!r} but its EdgeAgent spec "
            f"says {agent.spec.region!r}: it receives nothing and its models are removed"
        )
        log.warning("residency: %s", message, extra={"agent": agent.metadata.name})
        await self._records.warn(agent, reason="ReportedRegionMismatch", message=message)

    async def _maybe_write(self, name: str, status: edgeagent.EdgeAgentStatus) -> None:
        now = self._clock()
        if not heartbeats.write_due(
            written=self._written.get(name),
            current=status,
            written_at=self._written_at.get(name),
            now=now,
            refresh=datetime.timedelta(seconds=self._settings.last_seen_refresh_seconds),
        ):
            return
        body = status.model_dump(by_alias=True, exclude_none=True, mode="json")
        old = self._written.get(name)
        old_body = old.model_dump(by_alias=True, exclude_none=True, mode="json") if old else None
        try:
            await self._records.write_status(name, old=old_body, new=body)
        except EdgewaveError as error:
            log.warning("status of EdgeAgent %s not written: %s", name, error)
            return
        self.status_writes += 1
        self._written[name] = status
        self._written_at[name] = now


def _connection(agent: edgeagent.EdgeAgent) -> tuple[str | None, object]:
    return agent.spec.endpoint, agent.spec.tls_secret_ref


def by_name(agents: Iterable[edgeagent.EdgeAgent]) -> Mapping[str, edgeagent.EdgeAgent]:
    return {agent.metadata.name or "": agent for agent in agents}
