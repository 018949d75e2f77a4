"""Agents reached through edge gateways: where each agent's session is, and its link there.

Agents behind NAT dial a gateway (`edgewave-agent serve --gateway`); nothing dials them.
The operator knows its gateways by name and address (its settings' `gateways`, plus the
one embedded in its own process) and watches each one's sessions (`WatchSessions`): an
agent's gateway is where its live session is (the newest, if it shows up on two while it
moves). A gateway that cannot be watched has no sessions as far as the operator knows, so
its agents read as disconnected until it answers again; a restarted operator learns the
sessions afresh from the first listing, so nothing about them is persisted.

A `GatewayLink` is an `AgentClient` addressed to the gateway with the agent's name as
route, so every call is relayed unchanged, except `push`: the engine goes into the
gateway's cache once (Stat first: the cache is persistent and content-addressed, so
neither a gateway restart nor a new operator leader uploads it again), then the gateway
delivers it to the agent (`Deliver`). Uploads of one digest to one gateway are serialized,
so the agents of a region waiting for the same engine cause one upload. Each rollout pins
its engines in every gateway's cache (`pin`, owner `rollout-<uid>`), so eviction never
takes an engine a live rollout still delivers; deleting the rollout releases them.

The operator's client certificate is renewed as it ages (`renew_tls`); a gRPC channel
dials every new connection with the certificate it was made with, so each call takes the
gateway's client as of now (`_client`): a renewed certificate gets a new client, and the
old one closes once the calls still on it (a watch stream, an upload) have ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from edgewave_gateway import client as gateway_client
from edgewave_operator.agents import client as agent_client
from edgewave_operator.agents import errors
from edgewave_operator.agents.artifacts import Artifact
from edgewave_proto.gateway.v1 import gateway_pb2 as gw

log = logging.getLogger(__name__)
WATCH_BACKOFF_SECONDS = (0.5, 5.0)
"""First and longest wait before watching a gateway again after its stream ended."""


@dataclass(frozen=True)
class Session:
    """An agent's live session, as its gateway last listed it."""

    gateway: str
    since: datetime.datetime
    session_id: str


def _session(gateway: str, info: gw.SessionInfo) -> Session:
    since = datetime.datetime.fromtimestamp(info.connected_since_unix_seconds, datetime.UTC)
    return Session(gateway=gateway, since=since, session_id=info.session_id)


class Gateways:
    """The gateways this operator reaches agents through, and who is connected where."""

    def __init__(
        self,
        *,
        tls: agent_client.ClientTls,
        on_change: Callable[[str], None],
        chunk_bytes: int = agent_client.DEFAULT_CHUNK_BYTES,
        renew_tls: Callable[[], agent_client.ClientTls] | None = None,
    ) -> None:
        """`renew_tls`: the operator's client certificate as of now (links pick up renewals)."""
        self._tls = tls
        self._renew_tls = renew_tls
        self._on_change = on_change
        self._chunk_bytes = chunk_bytes
        self.addresses: dict[str, str] = {}
        # Each gateway's client now, and the certificate it was made with (made on first use).
        self._clients: dict[str, tuple[agent_client.ClientTls, gateway_client.GatewayClient]] = {}
        # Calls and streams running on each client; a replaced one closes when this is 0.
        self._users: dict[gateway_client.GatewayClient, int] = {}
        self._sessions: dict[str, dict[str, Session]] = {}
        self._uploads: dict[tuple[str, str], asyncio.Lock] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        # What each gateway was told to keep for each owner (SetPins replaces; persisted there).
        self._pinned: dict[tuple[str, str], frozenset[str]] = {}
        self._running = False
        # Engine bytes this operator uploaded to gateways (central bytes), over all calls.
        self.uploaded_bytes = 0

    def add(self, name: str, address: str) -> None:
        """Reach agents through gateway `name` at `address` (watched once `run` runs)."""
        if name in self.addresses:
            raise ValueError(f"gateway {name!r} is listed twice: gateway names must be unique")
        self.addresses[name] = address
        if self._running:
            self._start_watch(name)

    @contextlib.asynccontextmanager
    async def _client(self, name: str) -> AsyncIterator[gateway_client.GatewayClient]:
        """Gateway `name`'s client for one call or stream, made with the certificate of now.

        Why: a channel dials every reconnect with the certificate it was made with, so
        after the operator's first one expires, a client kept from the start could never
        reach its gateway again. A renewed certificate gets a new client; the replaced one
        serves the calls already on it (a stream lives on its established connection) and
        closes after the last of them.
        """
        tls = self._renew_tls() if self._renew_tls else self._tls
        made_with, client = self._clients.get(name, (None, None))
        if client is None or made_with != tls:
            replaced = client
            client = gateway_client.GatewayClient(
                self.addresses[name],
                ca_pem=tls.ca_pem,
                cert_pem=tls.cert_pem or b"",
                key_pem=tls.key_pem or b"",
                server_name=tls.server_name,
                chunk_bytes=self._chunk_bytes,
            )
            self._clients[name] = (tls, client)
            if replaced is not None and not self._users.get(replaced):
                await _close(replaced)
        self._users[client] = self._users.get(client, 0) + 1
        try:
            yield client
        finally:
            self._users[client] -= 1
            if not self._users[client]:
                del self._users[client]
                if self._clients[name][1] is not client:
                    await _close(client)

    # -- where agents are ----------------------------------------------------------------

    def session_of(self, agent: str) -> Session | None:
        """The agent's live session (the newest, if two gateways list one), or None."""
        found = [s[agent] for s in self._sessions.values() if agent in s]
        return max(found, key=lambda s: s.since) if found else None

    def _replace(self, gateway: str, sessions: Mapping[str, Session]) -> None:
        before = {agent: self.session_of(agent) for agent in self._known()}
        self._sessions[gateway] = dict(sessions)
        for agent in self._known() | set(before):
            if self.session_of(agent) != before.get(agent):
                self._on_change(agent)

    def _known(self) -> set[str]:
        return {agent for sessions in self._sessions.values() for agent in sessions}

    # -- links ---------------------------------------------------------------------------

    def link(
        self, agent: str, *, session: Session, signing_key_pem: bytes, timeout: float
    ) -> GatewayLink:
        """A link to `agent` through the gateway holding `session`."""
        return GatewayLink(
            self.addresses[session.gateway],
            tls=self._renew_tls() if self._renew_tls else self._tls,
            renew_tls=self._renew_tls,
            signing_key_pem=signing_key_pem,
            chunk_bytes=self._chunk_bytes,
            timeout=timeout,
            name=agent,
            via_gateway=agent,
            gateway=session.gateway,
            gateways=self,
        )

    async def upload(self, gateway: str, artifact: Artifact) -> int:
        """Make `gateway`'s cache hold `artifact` (Stat first); data bytes sent by this call."""
        lock = self._uploads.setdefault((gateway, artifact.digest), asyncio.Lock())
        async with lock, self._client(gateway) as client:
            before = client.uploaded_bytes
            with errors.translated(agent=f"gateway {gateway}", call="PushEngine"):
                await client.push_engine(artifact.path, artifact.digest)
            sent = client.uploaded_bytes - before
            self.uploaded_bytes += sent
            return sent

    async def deliver(self, gateway: str, *, agent: str, digest: str) -> gw.DeliverProgress:
        """Have `gateway` push a cached engine to `agent` (resumed from the agent's offset)."""
        async with self._client(gateway) as client:
            with errors.translated(agent=agent, call="Deliver"):
                return await client.deliver(agent, digest, chunk_bytes=self._chunk_bytes)

    async def pin(self, owner: str, digests: Iterable[str]) -> None:
        """Have every gateway keep `digests` for `owner` (replacing its pins; empty: none).

        A rollout pins the engines it delivers, so a full cache never evicts them while it
        lives; told again only when they change. A gateway that cannot be told now is told
        on a later turn (logged, never an error for the rollout).
        """
        wanted = frozenset(digests)
        for name in list(self.addresses):
            if self._pinned.get((name, owner), frozenset()) == wanted:
                continue
            try:
                async with self._client(name) as client:
                    await client.set_pins(owner, sorted(wanted))
            except grpc.RpcError as error:
                log.warning("gateway %s: pins of %s not set: %s", name, owner, _describe(error))
                continue
            if wanted:
                self._pinned[(name, owner)] = wanted
            else:
                self._pinned.pop((name, owner), None)

    # -- watching ------------------------------------------------------------------------

    async def run(self) -> None:
        """Watch every gateway's sessions until cancelled; then close the clients."""
        self._running = True
        for name in self.addresses:
            self._start_watch(name)
        try:
            await asyncio.Event().wait()
        finally:
            self._running = False
            for task in self._watchers.values():
                task.cancel()
            for task in self._watchers.values():
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._watchers.clear()
            for client in {client for _, client in self._clients.values()} | set(self._users):
                await _close(client)

    def _start_watch(self, name: str) -> None:
        self._watchers[name] = asyncio.create_task(self._watch(name), name=f"gateway-{name}")

    async def _watch(self, name: str) -> None:
        first, longest = WATCH_BACKOFF_SECONDS
        delay = first
        while True:
            try:
                async with self._client(name) as client:
                    async for listing in client.watch_sessions():
                        delay = first
                        self._replace(name, {s.agent: _session(name, s) for s in listing.sessions})
                problem = "the stream ended"
            except grpc.RpcError as error:
                problem = _describe(error)
            if self._sessions.get(name):
                log.warning("gateway %s: sessions unknown (%s); retrying", name, problem)
            self._replace(name, {})
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)


async def _close(client: gateway_client.GatewayClient) -> None:
    with contextlib.suppress(Exception):
        await client.close()


def _describe(error: Any) -> str:
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else str(error)
    return f"{code.name if code else 'error'}: {details}"


class GatewayLink(agent_client.AgentClient):
    """An agent's calls relayed by its gateway; pushes go through the gateway's cache."""

    def __init__(
        self,
        endpoint: str,
        *,
        tls: agent_client.ClientTls,
        signing_key_pem: bytes,
        chunk_bytes: int,
        timeout: float,
        name: str,
        via_gateway: str,
        gateway: str,
        gateways: Gateways,
        renew_tls: Callable[[], agent_client.ClientTls] | None = None,
    ) -> None:
        super().__init__(
            endpoint, tls=tls, signing_key_pem=signing_key_pem, chunk_bytes=chunk_bytes,
            timeout=timeout, name=name, via_gateway=via_gateway, renew_tls=renew_tls,
        )  # fmt: skip
        self.gateway = gateway
        self._gateways = gateways

    async def push(
        self,
        artifact: Artifact,
        *,
        attempts: int = 3,
        progress: Callable[[int], Awaitable[None]] | None = None,
    ) -> agent_client.PushResult:
        """Upload to the gateway once per digest, then have it deliver to this agent.

        A cached copy the agent refuses as corrupt is dropped by the gateway (DATA_LOSS):
        it is uploaded again and delivered once more. (`attempts` and `progress` belong to
        the direct push; the gateway resumes both legs itself.)
        """
        sent = 0
        for attempt in (1, 2):
            sent += await self._gateways.upload(self.gateway, artifact)
            try:
                done = await self._gateways.deliver(
                    self.gateway, agent=self.name, digest=artifact.digest
                )
            except errors.ArtifactCorrupt:
                if attempt == 2:
                    raise
                continue
            return agent_client.PushResult(
                artifact.digest, done.size_bytes or artifact.size, done.resumed_from, sent,
                already_present=done.already_present and sent == 0, attempts=attempt,
            )  # fmt: skip
        raise AssertionError("unreachable")
