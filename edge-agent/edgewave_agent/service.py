"""The agent API servicer (edgewave.agent.v1), thin, and the statuses of agent errors.

Servicers only translate between protobuf and the core (`store`, `serving`, `building`,
`receiving`); the agent's typed errors become gRPC statuses in `abort_with`, and nowhere
else. Mutating calls require the operator's identity on a verified client certificate
(`authorizing`; in gateway mode the caller's certificate the gateway relays) and a ready
agent, checked in `require_control_identity`.
Blocking work runs in worker threads, off the event loop. KServe v2 inference is served by
`inference`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc

from edgewave_agent import (
    authorizing,
    building,
    errors,
    identity,
    inventory,
    memory,
    observers,
    owners,
    receiving,
    serving,
    stats,
)
from edgewave_agent.backends import Backend, GpuInfo
from edgewave_agent.serving import views
from edgewave_agent.settings import AgentConfig
from edgewave_agent.store import Store
from edgewave_api import grants
from edgewave_api.telemetry import spans
from edgewave_proto.agent.v1 import agent_pb2 as pb
from edgewave_proto.agent.v1 import agent_pb2_grpc, pushwire, wire

EXPECTED_OFFSET_KEY = wire.EXPECTED_OFFSET_KEY
RESUME_OFFSET_KEY = wire.RESUME_OFFSET_KEY
HIGHEST_SEQUENCE_KEY = wire.HIGHEST_SEQUENCE_KEY


async def abort_with(
    context: grpc.aio.ServicerContext[Any, Any], error: errors.AgentError
) -> NoReturn:
    """The one place an agent error becomes a gRPC status."""
    trailing: tuple[tuple[str, str], ...] = ()
    if isinstance(error, errors.OffsetMismatch):
        trailing = ((EXPECTED_OFFSET_KEY, str(error.expected_offset)),)
    if isinstance(error, errors.GrantRefused) and error.highest_sequence is not None:
        trailing = ((HIGHEST_SEQUENCE_KEY, str(error.highest_sequence)),)
    if error.retry_after is not None:
        trailing += ((wire.RETRY_AFTER_KEY, f"{error.retry_after:g}"),)
    await context.abort(grpc.StatusCode[error.status], str(error), trailing)
    raise AssertionError("unreachable: context.abort raises")


@dataclass
class AgentCore:
    """What the servicers translate to; one per agent."""

    config: AgentConfig
    store: Store
    serving: serving.Serving
    backends: Mapping[str, Backend]
    gpus: list[GpuInfo]
    clock: Callable[[], float] = time.time
    runtimes: dict[str, str] = field(default_factory=dict)
    observer: observers.Observer = field(default_factory=observers.NullObserver)
    # This agent's certificate and its renewal (None: plaintext, --insecure).
    identity: identity.AgentIdentity | None = None

    @property
    def insecure(self) -> bool:
        return self.config.insecure


def peer_certificate(context: grpc.aio.ServicerContext[Any, Any]) -> bytes | None:
    """The verified client certificate of the call (PEM), if the caller presented one."""
    certs = context.auth_context().get("x509_pem_cert")
    return next(iter(certs), None) if certs else None


async def require_control_identity(
    core: AgentCore,
    context: grpc.aio.ServicerContext[Any, Any],
    *,
    method: str,
    ready: bool = True,
) -> None:
    """Mutating calls need the operator's identity (relayed by a gateway or direct), checked in
    `authorizing`, and (with `ready`) an agent that has finished restoring its models."""
    if not core.insecure:
        try:
            authorizing.control_caller(
                peer_certificate(context),
                trust_domain=core.config.tls.trust_domain,
                method=method,
            )
        except errors.AgentError as error:
            await abort_with(context, error)
    if ready and not core.serving.ready:
        await abort_with(
            context,
            errors.AgentStarting(
                f"{method} refused: the agent is still loading its active models; retry",
                retry_after=2.0,
            ),
        )


async def require_grant(
    core: AgentCore,
    context: grpc.aio.ServicerContext[Any, Any],
    grant: pb.Grant,
    call: grants.Call,
    *,
    owner: pb.ModelOwner | None = None,
) -> grants.Grant:
    """The operator's grant must permit exactly `call` on this agent (`serving.granting`);
    `owner`, the request's own owner field when set, must be the grant's."""
    try:
        requested = _owner(owner) if owner is not None else None
        return await asyncio.to_thread(
            lambda: core.serving.admit(
                payload=grant.payload,
                signature=grant.signature,
                call=call,
                requested_owner=requested,
            )
        )
    except errors.AgentError as error:
        await abort_with(context, error)


def may_read_fleet_state(core: AgentCore, context: grpc.aio.ServicerContext[Any, Any]) -> bool:
    """Whether the caller may see more than inference clients need (see `authorizing`)."""
    return core.insecure or authorizing.may_read_fleet_state(
        peer_certificate(context), trust_domain=core.config.tls.trust_domain
    )


def watch_interval(requested: float, *, default: float, minimum: float) -> float:
    """Seconds between WatchStatus updates: the caller's (or the default), never below
    `minimum`."""
    return max(requested if requested > 0 else default, minimum)


def _health(health: stats.Health) -> pb.HealthMetrics:
    return pb.HealthMetrics(
        window_seconds=health.window_seconds,
        requests=health.requests,
        errors=health.errors,
        latency_p50_seconds=health.latency_p50_seconds,
        latency_p95_seconds=health.latency_p95_seconds,
    )


def _owner(message: pb.ModelOwner) -> owners.Owner | None:
    return owners.parse(message.namespace, message.name, message.uid)


def _requested_owner(request: pb.ActivateRequest | pb.RemoveRequest) -> pb.ModelOwner | None:
    """The request's own owner field, when set (it must match the grant's)."""
    return request.owner if request.HasField("owner") else None


def _owner_message(owner: owners.Owner | None) -> pb.ModelOwner | None:
    if owner is None:
        return None
    return pb.ModelOwner(namespace=owner.namespace, name=owner.name, uid=owner.uid)


def model_status(view: views.ModelView) -> pb.ModelStatus:
    return pb.ModelStatus(
        owner=_owner_message(view.owner),
        model=view.model,
        active_version=view.active.version if view.active else "",
        active_digest=view.active.digest if view.active else "",
        backend=view.active.backend if view.active else "",
        previous_version=view.previous.version if view.previous else "",
        versions=[
            pb.VersionStatus(
                version=v.ref.version,
                digest=v.ref.digest,
                backend=v.ref.backend,
                state=pb.VersionState.Value(v.state.wire_name),
                message=v.message,
                health=_health(v.health),
            )
            for v in view.versions
        ],
        health=_health(view.health),
    )


def push_response(received: receiving.Received) -> pb.PushResponse:
    return pb.PushResponse(
        digest=received.digest,
        size_bytes=received.size_bytes,
        complete=received.complete,
        already_present=received.already_present,
        resumed_from=received.resumed_from,
        received_bytes=received.received_bytes,
        verified_offset=received.verified_offset,
    )


def _as_agent_error(
    error: errors.AgentError | pushwire.DecodeError, *, chunk_index: int
) -> errors.AgentError:
    if isinstance(error, errors.AgentError):
        return error
    return errors.InvalidRequest(
        f"push message {chunk_index + 1} is not a valid PushChunk ({error}): send"
        " PushChunk messages serialized by protobuf"
    )


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, core: AgentCore) -> None:
        self._core = core
        # WatchStatus streams open now (one event loop: no lock needed).
        self._streams = 0

    async def Describe(
        self, request: pb.DescribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.DescribeResponse:
        core = self._core
        config = core.config
        if not may_read_fleet_state(core, context):
            # An inference client (serving port, no certificate): what it may call, no more.
            served = await asyncio.to_thread(core.serving.views)
            return pb.DescribeResponse(
                agent_id=config.agent_id,
                models=[
                    pb.ModelStatus(
                        model=v.model, active_version=v.active.version, backend=v.active.backend
                    )
                    for v in served
                    if v.active is not None
                ],
            )
        artifacts, used, free, views = await asyncio.to_thread(
            lambda: (
                core.store.artifacts(),
                core.store.used_bytes(),
                core.store.disk_free_bytes(),
                core.serving.views(),
            )
        )
        return pb.DescribeResponse(
            agent_id=config.agent_id,
            region=config.region,
            zone=config.zone,
            jurisdiction=config.jurisdiction,
            labels=config.labels,
            gpus=[
                pb.Gpu(
                    index=g.index,
                    name=g.name,
                    uuid=g.uuid,
                    compute_capability_major=g.compute_capability[0],
                    compute_capability_minor=g.compute_capability[1],
                    memory_bytes=g.memory_bytes,
                    driver_version=g.driver_version,
                )
                for g in core.gpus
            ],
            runtimes=[pb.Runtime(name=n, version=v) for n, v in sorted(core.runtimes.items())],
            disk_free_bytes=free,
            store_quota_bytes=int(config.store.quota_bytes),
            store_used_bytes=used,
            artifacts=[pb.Artifact(digest=d, size_bytes=s) for d, s in sorted(artifacts.items())],
            models=[model_status(v) for v in views],
            agent_version=inventory.agent_version(),
            grant_sequences=core.serving.grant_sequences(),
            **_certificate_validity(core.identity),
        )

    async def Stat(
        self, request: pb.StatRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.StatResponse:
        await require_control_identity(self._core, context, method="Stat", ready=False)
        try:
            stat = await asyncio.to_thread(self._core.store.stat, request.digest)
        except errors.AgentError as error:
            await abort_with(context, error)
        return pb.StatResponse(
            digest=stat.digest,
            complete=stat.complete,
            verified_offset=stat.verified_offset,
            total_size=stat.total_size,
            in_progress=stat.in_progress,
            received_offset=stat.received_offset,
        )

    async def Push(  # type: ignore[override]  # chunks arrive decoded in place (pushwire)
        self,
        request_iterator: AsyncIterator[pushwire.PushChunkView],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.PushResponse:
        core = self._core
        receiver = receiving.Receiver(
            store=core.store,
            quota_bytes=int(core.config.store.quota_bytes),
            collect_garbage=core.serving.collect_garbage,
            observer=core.observer,
        )
        try:
            async for chunk in spans.receiving(request_iterator):
                if receiver.upload is None:
                    # Every refusal is decided on the first chunk, before the go-ahead, so a
                    # client that waits for it has no write in flight when the status comes
                    # (grpc aio clients report INTERNAL otherwise: grpc/grpc#36066).
                    await require_control_identity(self._core, context, method="Push")
                    done = await receiver.begin(chunk)
                    if done is not None:
                        return push_response(done)
                    assert receiver.upload is not None
                    resume = str(receiver.upload.resumed_from)
                    await context.send_initial_metadata(((RESUME_OFFSET_KEY, resume),))
                await receiver.take(chunk)
            return push_response(await receiver.finish())
        except (errors.AgentError, pushwire.DecodeError) as caught:
            error = _as_agent_error(caught, chunk_index=receiver.chunks)
            await receiver.fail(error)
            await abort_with(context, error)
        except BaseException:
            # Cancelled or broken stream: keep every byte written, durably, for the resume.
            await receiver.interrupted()
            raise
        finally:
            receiver.close()
            await asyncio.to_thread(memory.release_free_memory)

    async def Activate(
        self, request: pb.ActivateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ActivateResponse:
        core = self._core
        await require_control_identity(core, context, method="Activate")
        call = grants.Call(
            action=grants.Action.ACTIVATE,
            agent=core.config.agent_id,
            model=request.model,
            version=request.version,
            digest=request.digest,
            backend=request.backend,
        )
        grant = await require_grant(
            core, context, request.grant, call, owner=_requested_owner(request)
        )
        try:
            owner = owners.granted(grant)
            result = await asyncio.to_thread(
                lambda: core.serving.activate(
                    model=request.model,
                    version=request.version,
                    digest=request.digest,
                    backend=request.backend,
                    owner=owner,
                )
            )
        except errors.AgentError as error:
            await abort_with(context, error)
        return pb.ActivateResponse(
            model=model_status(result.view),
            previous_version=result.previous_version,
            unchanged=result.unchanged,
        )

    async def Rollback(
        self, request: pb.RollbackRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RollbackResponse:
        core = self._core
        await require_control_identity(core, context, method="Rollback")
        call = grants.Call(
            action=grants.Action.ROLLBACK, agent=core.config.agent_id, model=request.model
        )
        await require_grant(core, context, request.grant, call)
        try:
            view, rolled_back_from = await asyncio.to_thread(
                self._core.serving.rollback, request.model
            )
        except errors.AgentError as error:
            await abort_with(context, error)
        return pb.RollbackResponse(model=model_status(view), rolled_back_from=rolled_back_from)

    async def Remove(
        self, request: pb.RemoveRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RemoveResponse:
        core = self._core
        await require_control_identity(core, context, method="Remove")
        target = request.WhichOneof("target")
        serving_ = core.serving
        if target is None:
            await abort_with(
                context, errors.InvalidRequest("Remove needs a version, a digest or all_versions")
            )
        call = grants.Call(
            action=grants.Action.REMOVE,
            agent=core.config.agent_id,
            model=request.model,
            version=request.version,
            digest=request.digest,
            all_versions=request.all_versions,
        )
        grant = await require_grant(
            core, context, request.grant, call, owner=_requested_owner(request)
        )
        try:
            owner = owners.granted(grant)
            if target == "all_versions":
                removal = await asyncio.to_thread(
                    lambda: serving_.remove_model(request.model, owner=owner)
                )
            else:
                removal = await asyncio.to_thread(
                    lambda: serving_.remove(
                        request.model,
                        version=request.version if target == "version" else None,
                        digest=request.digest if target == "digest" else None,
                        owner=owner,
                    )
                )
        except errors.AgentError as error:
            await abort_with(context, error)
        return pb.RemoveResponse(
            removed_versions=removal.versions,
            deleted_digests=removal.digests,
            freed_bytes=removal.freed_bytes,
        )

    def status_update(self) -> pb.StatusUpdate:
        core = self._core
        return pb.StatusUpdate(
            agent_id=core.config.agent_id,
            time_unix_seconds=core.clock(),
            ready=core.serving.all_ready(),
            models=[model_status(v) for v in core.serving.views()],
        )

    async def WatchStatus(
        self, request: pb.WatchStatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.StatusUpdate]:
        config = self._core.config
        await require_control_identity(self._core, context, method="WatchStatus", ready=False)
        if self._streams >= config.max_status_streams:
            await abort_with(
                context,
                errors.TooManyStreams(
                    f"WatchStatus refused: {self._streams} streams are open, the most this agent"
                    " serves (max_status_streams); close one or retry later",
                    retry_after=5.0,
                ),
            )
        interval = watch_interval(
            request.interval_seconds,
            default=config.status_interval_seconds,
            minimum=config.status_min_interval_seconds,
        )
        self._streams += 1
        try:
            while True:
                yield await asyncio.to_thread(self.status_update)
                if request.once:
                    return
                await asyncio.sleep(interval)
        finally:
            self._streams -= 1

    async def Build(
        self, request: pb.BuildRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.BuildResponse:
        core = self._core
        await require_control_identity(core, context, method="Build")
        call = grants.Call(
            action=grants.Action.BUILD,
            agent=core.config.agent_id,
            spec_sha256=hashlib.sha256(request.spec_json.encode()).hexdigest(),
        )
        await require_grant(core, context, request.grant, call)
        try:
            built = await asyncio.to_thread(
                lambda: building.build(
                    store=core.store,
                    spec_json=request.spec_json,
                    workdir=core.config.data_dir / "builds",
                    timeout_s=request.timeout_seconds or None,
                )
            )
        except errors.AgentError as error:
            await abort_with(context, error)
        return pb.BuildResponse(
            engine_digest=built.engine_digest,
            size_bytes=built.size_bytes,
            build_seconds=built.build_seconds,
            backend=built.backend,
            backend_version=built.backend_version,
            compute_capability=built.compute_capability,
            log=built.log,
            key_digest=built.key_digest,
        )

    async def RequestRenewal(
        self, request: pb.RequestRenewalRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RequestRenewalResponse:
        core = self._core
        await require_control_identity(core, context, method="RequestRenewal", ready=False)
        own = await _own_identity(core, context)
        try:
            renewal = await asyncio.to_thread(own.request_renewal)
        except errors.AgentError as error:
            await abort_with(context, error)
        return pb.RequestRenewalResponse(
            csr_pem=renewal.csr_pem, current_cert_pem=renewal.current_cert_pem, proof=renewal.proof
        )

    async def InstallCertificate(
        self, request: pb.InstallCertificateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.InstallCertificateResponse:
        core = self._core
        await require_control_identity(core, context, method="InstallCertificate", ready=False)
        own = await _own_identity(core, context)
        try:
            installed = await asyncio.to_thread(own.install, request.cert_pem)
        except errors.AgentError as error:
            await abort_with(context, error)
        return pb.InstallCertificateResponse(
            not_after_unix_seconds=int(installed.not_after.timestamp())
        )


async def _own_identity(
    core: AgentCore, context: grpc.aio.ServicerContext[Any, Any]
) -> identity.AgentIdentity:
    if core.identity is None:
        await abort_with(
            context,
            errors.InvalidRequest(
                "this agent runs without TLS (--insecure): it has no certificate"
            ),
        )
    return core.identity


def _certificate_validity(own: identity.AgentIdentity | None) -> dict[str, int]:
    if own is None:
        return {}
    current = own.current()
    return {
        "certificate_not_before_unix_seconds": int(current.not_before.timestamp()),
        "certificate_not_after_unix_seconds": int(current.not_after.timestamp()),
    }
