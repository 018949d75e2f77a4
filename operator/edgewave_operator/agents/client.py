"""Async gRPC client to one edge agent: describe, stat, push (resumable), activate, ...

Calls go to the agent's control port with mTLS (the operator's client certificate); a
client without TLS settings speaks plaintext to `--insecure` lab agents. `push` resumes:
it asks Stat where the agent's verified bytes end and streams only the rest, retrying
temporary failures. Activate, Rollback, Remove and Build carry a grant signed with the
operator's Ed25519 key (`edgewave_api.grants`, `signing`): bound to the action, this agent
(its name as it reports in Describe, unless given), the rollout (uid, and namespace/name
as the model's owner, which the request also names), the target, an expiry and a
per-model sequence above the highest the agent reports; a grant refused as stale is
re-signed above the agent's highest once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from edgewave_api import grants, renewal, signing
from edgewave_api.errors import EdgewaveError, PermanentError
from edgewave_api.telemetry import interceptors, spans
from edgewave_operator.agents import errors
from edgewave_operator.agents.artifacts import Artifact
from edgewave_operator.planning import ownership
from edgewave_proto.agent.v1 import agent_pb2 as pb
from edgewave_proto.agent.v1 import agent_pb2_grpc, wire

# Chosen by bench/push_throughput.py's sweep: the largest chunks gain little past 1 MiB.
DEFAULT_CHUNK_BYTES = 1 << 20
MAX_MESSAGE_BYTES = 16 << 20
# Initial metadata by which the agent accepts a push, with the offset it expects data from.
RESUME_OFFSET_KEY = wire.RESUME_OFFSET_KEY
# Names the agent when the endpoint is an edge gateway that relays to it (edgewave_gateway).
GATEWAY_ROUTE_KEY = wire.GATEWAY_ROUTE_KEY
T = TypeVar("T")


@dataclass(frozen=True)
class ClientTls:
    """The CA that signed agents' certificates, and the operator's client certificate."""

    ca_pem: bytes
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    # Name to check the agent's certificate against, when the endpoint is an IP address.
    server_name: str | None = None


@dataclass(frozen=True)
class PushResult:
    digest: str
    size_bytes: int
    # Offset the last (successful) stream started from; size_bytes when nothing was sent.
    resumed_from: int
    # Data bytes this call sent over all attempts.
    sent_bytes: int
    already_present: bool
    attempts: int


def open_channel(endpoint: str, *, tls: ClientTls | None) -> grpc.aio.Channel:
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 60_000),
    ]
    if tls is None:
        return grpc.aio.insecure_channel(endpoint, options=options)
    if tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    credentials = grpc.ssl_channel_credentials(tls.ca_pem, tls.key_pem, tls.cert_pem)
    return grpc.aio.secure_channel(endpoint, credentials, options=options)


PUSH_METHOD = "/edgewave.agent.v1.AgentService/Push"


# What a Push stream carries: a PushChunk, or one serialized already.
PushMessage = pb.PushChunk | bytes


def _serialize_push_chunk(message: PushMessage) -> bytes:
    """A PushChunk's wire bytes; bytes are a PushChunk serialized already."""
    return message if isinstance(message, bytes) else message.SerializeToString()


class AgentClient:
    def __init__(
        self,
        endpoint: str,
        *,
        tls: ClientTls | None,
        signing_key_pem: bytes | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        timeout: float = 30.0,
        name: str | None = None,
        renew_tls: Callable[[], ClientTls] | None = None,
        agent_id: str | None = None,
        clock: Callable[[], float] = time.time,
        grant_lifetime_ms: int = grants.DEFAULT_LIFETIME_MS,
        via_gateway: str | None = None,
    ) -> None:
        """`via_gateway`: the endpoint is an edge gateway; relay every call to this agent."""
        self.endpoint = endpoint
        self._route: tuple[tuple[str, str], ...] = (
            ((GATEWAY_ROUTE_KEY, via_gateway),) if via_gateway else ()
        )
        self.name = name or endpoint
        # The agent's own name, which grants are bound to; learned from Describe if None.
        self.agent_id = agent_id
        self._clock = clock
        self._grant_lifetime_ms = grant_lifetime_ms
        # Highest grant sequence known per model (the agent's report, or this client's own).
        self._sequences: dict[str, int] = {}
        self._tls = tls
        self._renew_tls = renew_tls
        self._retiring: set[asyncio.Task[None]] = set()
        self._open(tls)
        self._signing_key_pem = signing_key_pem
        self.chunk_bytes = chunk_bytes
        self.timeout = timeout

    def _open(self, tls: ClientTls | None) -> None:
        self._channel = open_channel(self.endpoint, tls=tls)
        self._stub = agent_pb2_grpc.AgentServiceStub(self._channel)
        # Push, taking data chunks already serialized (Artifact.push_messages) as they are.
        self._push_call: grpc.aio.StreamUnaryMultiCallable[PushMessage, pb.PushResponse]
        self._push_call = self._channel.stream_unary(
            PUSH_METHOD,
            request_serializer=_serialize_push_chunk,
            response_deserializer=pb.PushResponse.FromString,
        )

    def _renewed(self) -> None:
        """Use the current client certificate: a renewed one gets a new channel, and the
        old channel closes once its calls finish (at most `timeout` seconds)."""
        if self._renew_tls is None:
            return
        tls = self._renew_tls()
        if tls == self._tls:
            return
        old = self._channel
        self._tls = tls
        self._open(tls)
        task = asyncio.get_running_loop().create_task(old.close(grace=self.timeout))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def close(self) -> None:
        await self._channel.close(grace=None)
        for task in list(self._retiring):
            await task

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return (*interceptors.outgoing_metadata(), *self._route)

    def _translated(self, call: str) -> Any:
        """Errors of `call` as domain errors; every call goes through here, so this is
        where a renewed client certificate is picked up."""
        self._renewed()
        return errors.translated(agent=self.name, call=call)

    async def describe(self) -> pb.DescribeResponse:
        with self._translated("Describe"):
            answer = await self._stub.Describe(
                pb.DescribeRequest(), timeout=self.timeout, metadata=self._route
            )
        for model, sequence in answer.grant_sequences.items():
            self._note_sequence(model, sequence)
        if self.agent_id is None and answer.agent_id:
            self.agent_id = answer.agent_id
        return answer

    async def renew_certificate(
        self, certify: Callable[[renewal.RenewalRequest], bytes]
    ) -> datetime.datetime:
        """Renew the agent's certificate over this link: its request, `certify`, install.

        `certify` (the operator's CA) checks the request and signs; it raises
        `renewal.RenewalRefused` for a request that does not prove who it is for.
        Returns the new certificate's expiry.
        """
        with self._translated("RequestRenewal"):
            asked = await self._stub.RequestRenewal(
                pb.RequestRenewalRequest(), timeout=self.timeout, metadata=self._route
            )
        cert_pem = certify(
            renewal.RenewalRequest(
                csr_pem=asked.csr_pem, current_cert_pem=asked.current_cert_pem, proof=asked.proof
            )
        )
        with self._translated("InstallCertificate"):
            installed = await self._stub.InstallCertificate(
                pb.InstallCertificateRequest(cert_pem=cert_pem),
                timeout=self.timeout,
                metadata=self._route,
            )
        return datetime.datetime.fromtimestamp(installed.not_after_unix_seconds, datetime.UTC)

    def _note_sequence(self, model: str, sequence: int) -> None:
        self._sequences[model] = max(self._sequences.get(model, 0), sequence)

    async def stat(self, digest: str) -> pb.StatResponse:
        with self._translated("Stat"):
            return await self._stub.Stat(
                pb.StatRequest(digest=digest),
                timeout=self.timeout,
                metadata=self._metadata(),
            )

    async def push(
        self,
        artifact: Artifact,
        *,
        attempts: int = 3,
        progress: Callable[[int], Awaitable[None]] | None = None,
    ) -> PushResult:
        """Make the agent hold `artifact`, sending only what it does not have verified yet.

        `await progress(offset)` runs before each chunk is sent (progress bars, tests).
        """
        with spans.push(agent=self.name, digest=artifact.digest, size=artifact.size):
            result = await self._push(artifact, attempts=attempts, progress=progress)
            spans.annotate(resumed_offset=result.resumed_from, sent_bytes=result.sent_bytes)
            return result

    async def _push(
        self,
        artifact: Artifact,
        *,
        attempts: int,
        progress: Callable[[int], Awaitable[None]] | None,
    ) -> PushResult:
        sent = [0]
        last_error: EdgewaveError | None = None
        for attempt in range(1, attempts + 1):
            try:
                stat = await self.stat(artifact.digest)
                if stat.complete:
                    return PushResult(
                        artifact.digest, stat.total_size, stat.total_size, sent[0],
                        already_present=sent[0] == 0, attempts=attempt,
                    )  # fmt: skip
                if stat.in_progress:
                    raise errors.AgentBusy(
                        f"agent {self.name}: another push of {artifact.digest[:12]} is running",
                        retry_after=1.0,
                    )
                try:
                    with self._translated("Push"):
                        response = await self._push_once(
                            artifact, offset=stat.verified_offset, sent=sent, progress=progress
                        )
                except errors.AgentInternalError:
                    # A stream that ends while a chunk is being written reads as INTERNAL,
                    # whatever ended it (grpc/grpc#36066): an agent that went away says so.
                    await self.stat(artifact.digest)
                    raise
                if response.complete:
                    return PushResult(
                        artifact.digest, response.size_bytes, response.resumed_from, sent[0],
                        already_present=response.already_present, attempts=attempt,
                    )  # fmt: skip
                raise errors.AgentInternalError(
                    f"agent {self.name}: push of {artifact.digest[:12]} ended at"
                    f" {response.verified_offset} of {artifact.size} bytes",
                    retry_after=0.0,
                )
            except EdgewaveError as error:
                if not error.temporary or attempt == attempts:
                    raise
                last_error = error
                await asyncio.sleep(min(error.retry_after or 0.0, 5.0))
        assert last_error is not None
        raise last_error

    async def _push_once(
        self,
        artifact: Artifact,
        *,
        offset: int,
        sent: list[int],
        progress: Callable[[int], Awaitable[None]] | None,
    ) -> pb.PushResponse:
        """One Push stream: a header chunk, the agent's go-ahead, then the data.

        Waiting for the go-ahead (initial metadata with the resume offset) means no write is
        in flight when the agent refuses the push, so its status arrives intact (grpc aio
        reports INTERNAL for a status that races a write: grpc/grpc#36066).
        """
        # Written to with call.write. The trace context goes as call metadata, not through
        # channel interceptors: grpc.aio's intercepted calls change how write() fails.
        call = self._push_call(None, metadata=self._metadata())
        try:
            await call.write(
                pb.PushChunk(digest=artifact.digest, total_size=artifact.size, offset=offset)
            )
            metadata = dict(await call.initial_metadata() or ())
            resume = metadata.get(RESUME_OFFSET_KEY)
            if resume is None:
                # Already stored (a response), or refused (its status).
                return await call
            # Each chunk's message is built from the artifact's map with one copy.
            chunks = artifact.push_messages(offset=int(resume), chunk_bytes=self.chunk_bytes)
            for position, length, message in chunks:
                if progress is not None:
                    await progress(position)
                if call.done():
                    break  # the agent ended the push (or went away): its status says why
                try:
                    await call.write(message)
                except asyncio.InvalidStateError:
                    break  # ended while this chunk was waiting to be written
                sent[0] += length
            else:
                await call.done_writing()
            return await call
        except BaseException:
            # Cancelled, or a failed write: end the stream so the agent keeps what it has.
            call.cancel()
            raise

    async def grant(
        self, call: grants.Call, *, rollout: str, owner: ownership.Owner | None = None
    ) -> pb.Grant:
        """Sign the operator's grant for `call` (its `agent` is filled in here), for rollout
        uid `rollout` and `owner`'s namespace/name (the owner the agent records)."""
        if self._signing_key_pem is None:
            raise PermanentError(
                "this client has no grant signing key: pass signing_key_pem (the operator's"
                " Ed25519 private key)"
            )
        if self.agent_id is None:
            await self.describe()
        if not self.agent_id:
            raise PermanentError(f"agent {self.name} reports no agent_id: cannot bind a grant")
        now_ms = int(self._clock() * 1000)
        sequence = 0
        if call.action is not grants.Action.BUILD:
            sequence = grants.next_sequence(
                highest_seen=self._sequences.get(call.model, 0), now_ms=now_ms
            )
            self._note_sequence(call.model, sequence)
        signed = signing.sign_grant(
            self._signing_key_pem,
            grants.Grant(
                call=dataclasses.replace(call, agent=self.agent_id),
                rollout=rollout,
                sequence=sequence,
                expires_ms=now_ms + self._grant_lifetime_ms,
                owner=(
                    grants.Owner(namespace=owner.namespace, name=owner.name)
                    if owner is not None
                    else None
                ),
            ),
        )
        return pb.Grant(payload=signed.payload, signature=signed.signature)

    async def _granted(
        self,
        name: str,
        call: grants.Call,
        *,
        rollout: str,
        send: Callable[[pb.Grant], Awaitable[T]],
        owner: ownership.Owner | None = None,
    ) -> T:
        """Send a granted call; a grant refused as stale is re-signed above the agent's
        highest once (another operator replica, or one with a slower clock, went first)."""
        for attempt in (1, 2):
            grant = await self.grant(call, rollout=rollout, owner=owner)
            try:
                with self._translated(name):
                    return await send(grant)
            except errors.AgentNotAuthorized as error:
                if error.highest_sequence is None or attempt == 2:
                    raise
                self._note_sequence(call.model, error.highest_sequence)
        raise AssertionError("unreachable")

    async def activate(
        self,
        *,
        model: str,
        version: str,
        digest: str,
        backend: str,
        rollout: str,
        deadline_seconds: float | None = None,
        owner: ownership.Owner | None = None,
    ) -> pb.ActivateResponse:
        """Activate a pushed artifact, with a grant for `rollout` (its uid) and `owner`."""
        call = grants.Call(
            action=grants.Action.ACTIVATE,
            agent="",
            model=model,
            version=version,
            digest=digest,
            backend=backend,
        )
        with spans.activate(agent=self.name, model=model, version=version, digest=digest):
            return await self._granted(
                "Activate",
                call,
                rollout=rollout,
                owner=owner,
                send=lambda grant: self._stub.Activate(
                    pb.ActivateRequest(
                        model=model,
                        version=version,
                        digest=digest,
                        backend=backend,
                        owner=_owner(owner),
                        grant=grant,
                    ),
                    timeout=deadline_seconds or max(self.timeout, 120),
                    metadata=self._metadata(),
                ),
            )

    async def rollback(self, model: str, *, rollout: str) -> pb.RollbackResponse:
        call = grants.Call(action=grants.Action.ROLLBACK, agent="", model=model)
        return await self._granted(
            "Rollback",
            call,
            rollout=rollout,
            send=lambda grant: self._stub.Rollback(
                pb.RollbackRequest(model=model, grant=grant),
                timeout=max(self.timeout, 120),
                metadata=self._metadata(),
            ),
        )

    async def remove(
        self,
        model: str,
        *,
        rollout: str,
        version: str | None = None,
        digest: str | None = None,
        owner: ownership.Owner | None = None,
    ) -> pb.RemoveResponse:
        """Remove one version (or digest); the agent refuses when another rollout than
        `owner` owns the model."""
        if (version is None) == (digest is None):
            raise PermanentError("remove needs exactly one of version or digest")
        call = grants.Call(
            action=grants.Action.REMOVE,
            agent="",
            model=model,
            version=version or "",
            digest=digest or "",
        )

        def request(grant: pb.Grant) -> pb.RemoveRequest:
            made = pb.RemoveRequest(model=model, owner=_owner(owner), grant=grant)
            if version is not None:
                made.version = version
            else:
                made.digest = digest or ""
            return made

        return await self._granted(
            "Remove",
            call,
            rollout=rollout,
            owner=owner,
            send=lambda grant: self._stub.Remove(
                request(grant), timeout=self.timeout, metadata=self._route
            ),
        )

    async def remove_model(
        self, model: str, *, rollout: str, owner: ownership.Owner | None = None
    ) -> pb.RemoveResponse:
        """Stop serving `model` on the agent and delete every version (residency eviction);
        the agent refuses when another rollout than `owner` owns it."""
        call = grants.Call(action=grants.Action.REMOVE, agent="", model=model, all_versions=True)
        return await self._granted(
            "Remove",
            call,
            rollout=rollout,
            owner=owner,
            send=lambda grant: self._stub.Remove(
                pb.RemoveRequest(model=model, all_versions=True, owner=_owner(owner), grant=grant),
                timeout=self.timeout,
                metadata=self._route,
            ),
        )

    async def status(self) -> pb.StatusUpdate:
        """One status snapshot."""
        async for update in self.watch_status(once=True):
            return update
        raise errors.AgentInternalError(f"agent {self.name}: WatchStatus sent nothing")

    async def watch_status(
        self, *, interval_seconds: float = 0.0, once: bool = False
    ) -> AsyncIterator[pb.StatusUpdate]:
        """Status updates until the caller stops iterating (or the agent goes away)."""
        request = pb.WatchStatusRequest(interval_seconds=interval_seconds, once=once)
        self._renewed()
        call = self._stub.WatchStatus(request, metadata=self._route)
        try:
            with self._translated("WatchStatus"):
                async for update in call:
                    yield update
        finally:
            call.cancel()

    async def build(
        self, spec_json: str, *, rollout: str = "", timeout_seconds: float = 0.0
    ) -> pb.BuildResponse:
        """Build an engine on the agent from an ONNX model pushed to it before.

        Builds are shared by every rollout of the same content, so `rollout` may be empty.
        """
        call = grants.Call(
            action=grants.Action.BUILD,
            agent="",
            spec_sha256=hashlib.sha256(spec_json.encode()).hexdigest(),
        )
        deadline = timeout_seconds + 60 if timeout_seconds else None
        return await self._granted(
            "Build",
            call,
            rollout=rollout,
            send=lambda grant: self._stub.Build(
                pb.BuildRequest(spec_json=spec_json, timeout_seconds=timeout_seconds, grant=grant),
                timeout=deadline,
                metadata=self._route,
            ),
        )


async def push_to_many(
    clients: Sequence[AgentClient] | Iterable[AgentClient],
    artifact: Artifact,
    *,
    concurrency: int = 32,
) -> dict[str, PushResult | EdgewaveError]:
    """Push one artifact to many agents; the file is mapped once and shared by all pushes."""
    limit = asyncio.Semaphore(concurrency)

    async def one(client: AgentClient) -> tuple[str, PushResult | EdgewaveError]:
        async with limit:
            try:
                return client.name, await client.push(artifact)
            except EdgewaveError as error:
                return client.name, error

    results = await asyncio.gather(*(one(c) for c in clients))
    return dict(results)


def _owner(owner: ownership.Owner | None) -> pb.ModelOwner | None:
    if owner is None:
        return None
    return pb.ModelOwner(namespace=owner.namespace, name=owner.name, uid=owner.uid)
