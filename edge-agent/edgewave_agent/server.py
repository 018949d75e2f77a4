"""One edge agent as a gRPC server that can be constructed in-process.

`AgentServer` binds the control port (mTLS: the agent API) and the serving port (TLS, no
client certificate: inference, health and read-only calls), restores the active models
and only then reports SERVING on grpc.health.v1. Each port has its own gRPC server, with
its own limits on message size and concurrent RPCs, so inference load cannot starve the
operator's calls; without a serving port, the control port serves inference too (labs).
Ports may be 0; the bound ones are available as attributes and written to `port_file`.
Many agents can run in one process (the operator's scale benchmark runs a thousand), each
with its own data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc
from google.protobuf import message_factory
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgewave_agent import (
    backends,
    dialing,
    files,
    gatewaytrust,
    identity,
    inference,
    inventory,
    observers,
    service,
)
from edgewave_agent.backends import Backend, GpuInfo
from edgewave_agent.serving import Serving
from edgewave_agent.settings import AgentConfig
from edgewave_agent.store import Store
from edgewave_proto.agent.v1 import agent_pb2, pushwire

log = logging.getLogger(__name__)
AGENT_SERVICE = "edgewave.agent.v1.AgentService"
HEALTH_SERVICES = ("", AGENT_SERVICE, inference.KSERVE_SERVICE)


@functools.cache
def _installed_backends(threads: int) -> Mapping[str, Backend]:
    return backends.installed(threads=threads)


@functools.cache
def _runtimes() -> Mapping[str, str]:
    return inventory.runtimes()


_HANDLER_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _add_agent_service(
    servicer: service.AgentServicer, server: grpc.aio.Server, *, gateway_mode: bool = False
) -> None:
    """Register AgentService as the generated code would, but Push reads chunks in place.

    The handlers come from the service descriptor (one per method, none forgotten); only
    Push's request deserializer differs: `pushwire.decode` instead of protobuf's parse,
    which would copy each chunk's data twice. In gateway mode each behaviour believes the
    caller identity that tunnelled calls carry on the Unix socket (`gatewaytrust`).
    """
    descriptor = agent_pb2.DESCRIPTOR.services_by_name["AgentService"]
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in descriptor.methods:
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        make = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
        behavior = getattr(servicer, method.name)
        if gateway_mode:
            behavior = gatewaytrust.trusting_gateway(
                behavior, server_streaming=method.server_streaming
            )
        handlers[method.name] = make(
            behavior,
            request_deserializer=pushwire.decode if method.name == "Push" else request.FromString,
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(descriptor.full_name, handlers),)
    )


class AgentServer:
    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Callable[[], float] = time.time,
        gpus: Sequence[GpuInfo] | None = None,
        inference_threads: int = 0,
        observer: observers.Observer | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor[Any, Any]] = (),
    ) -> None:
        self.config = config
        self.observer: observers.Observer = observer or observers.NullObserver()
        self._interceptors = tuple(interceptors)
        self._clock = clock
        self._gpus = gpus
        self._threads = inference_threads
        self._server: grpc.aio.Server | None = None
        self._serving_server: grpc.aio.Server | None = None
        self._inference: inference.InferenceServicer | None = None
        self._health = health_aio.HealthServicer()
        self.control_port = 0
        self.serving_port: int | None = None
        self.problems: list[str] = []
        self.core: service.AgentCore | None = None
        self.identity: identity.AgentIdentity | None = None
        # Gateway mode: the session with the gateway, and the socket AgentService is on.
        self.dialer: dialing.GatewayDialer | None = None
        self._dialing: asyncio.Task[None] | None = None

    def _credentials(self) -> tuple[grpc.ServerCredentials, grpc.ServerCredentials]:
        """Both ports' TLS, re-read from `identity` at each handshake once it is renewed."""
        tls = self.config.tls
        own = self.identity
        assert own is not None and tls.client_ca_file
        client_ca = tls.client_ca_file.read_bytes()

        def dynamic(roots: bytes | None) -> grpc.ServerCredentials:
            seen = [own.generation]

            def configuration() -> Any:
                current = own.current()
                return grpc.ssl_server_certificate_configuration(
                    [(current.key_pem, current.cert_pem)], root_certificates=roots
                )

            def fetch() -> Any:
                # Called by gRPC core for every handshake: cheap unless the pair changed.
                if own.generation == seen[0]:
                    return None
                seen[0] = own.generation
                return configuration()

            return grpc.dynamic_ssl_server_credentials(
                configuration(), fetch, require_client_authentication=roots is not None
            )

        return dynamic(client_ca), dynamic(None)

    def _bind(self, server: grpc.aio.Server, serving_server: grpc.aio.Server | None) -> None:
        listen = self.config.listen
        if self.config.gateway is not None:
            self._bind_gateway_mode(server, serving_server)
            return
        if self.config.insecure:
            log.warning(
                "agent %s runs WITHOUT TLS (--insecure): anyone who reaches it can push and"
                " activate models; use this only in a lab",
                self.config.agent_id,
            )
            self.control_port = server.add_insecure_port(listen.control)
            if listen.serving and serving_server is not None:
                self.serving_port = serving_server.add_insecure_port(listen.serving)
        else:
            control, serving = self._credentials()
            self.control_port = server.add_secure_port(listen.control, control)
            if listen.serving and serving_server is not None:
                self.serving_port = serving_server.add_secure_port(listen.serving, serving)
        if not self.control_port:
            raise OSError(f"cannot bind the control port {listen.control}")

    def _bind_gateway_mode(
        self, server: grpc.aio.Server, serving_server: grpc.aio.Server | None
    ) -> None:
        """No control port: AgentService on a Unix socket only this agent's user can reach."""
        path = self.config.control_socket()
        if len(str(path).encode()) > 107:
            raise OSError(
                f"control socket path {path} is longer than 107 bytes: set gateway.control_socket"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        path.unlink(missing_ok=True)
        if not server.add_insecure_port(f"unix:{path}"):
            raise OSError(f"cannot bind the control socket {path}")
        _control, serving = self._credentials()
        if self.config.listen.serving and serving_server is not None:
            self.serving_port = serving_server.add_secure_port(self.config.listen.serving, serving)

    async def start(self) -> None:
        config = self.config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        store = Store(
            config.data_dir / "store",
            quota_bytes=int(config.store.quota_bytes),
            max_artifact_bytes=int(config.store.max_artifact_bytes or 0) or None,
            checkpoint_bytes=int(config.store.checkpoint_bytes),
            max_uploads=config.store.max_concurrent_pushes,
            idle_upload_seconds=config.store.idle_push_seconds,
        )
        if not config.insecure:
            tls = config.tls
            assert tls.cert_file and tls.key_file and tls.client_ca_file
            self.identity = identity.AgentIdentity(
                agent_id=config.agent_id,
                trust_domain=tls.trust_domain,
                cert_file=tls.cert_file,
                key_file=tls.key_file,
                ca_file=tls.client_ca_file,
                directory=config.data_dir / "identity",
            )
        installed = _installed_backends(self._threads)
        gpus = list(self._gpus) if self._gpus is not None else inventory.gpus(config.gpus)
        serving = Serving(
            config=config,
            store=store,
            backends=installed,
            gpus=gpus,
            clock=self._clock,
            observer=self.observer,
        )
        self.observer.track_store_bytes(store.used_bytes)
        self.core = service.AgentCore(
            config=config,
            store=store,
            serving=serving,
            backends=installed,
            gpus=gpus,
            clock=self._clock,
            runtimes=dict(_runtimes()),
            observer=self.observer,
            identity=self.identity,
        )
        agent_servicer = service.AgentServicer(self.core)
        self._inference = inference.InferenceServicer(self.core, limits=config.inference)
        server = self._new_server(
            receive_bytes=int(config.max_message_bytes),
            send_bytes=int(config.max_message_bytes),
            rpcs=config.max_concurrent_control_rpcs,
        )
        serving_server = None
        if config.listen.serving:
            limits = config.inference
            serving_server = self._new_server(
                receive_bytes=int(limits.max_request_bytes),
                send_bytes=int(limits.max_response_bytes),
                rpcs=limits.max_concurrent_rpcs,
            )
        # Only the control server (a Unix socket in gateway mode) believes the caller
        # identity a gateway relays; the serving port never does.
        _add_agent_service(agent_servicer, server, gateway_mode=config.gateway is not None)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        if serving_server is not None:
            _add_agent_service(agent_servicer, serving_server)
            health_pb2_grpc.add_HealthServicer_to_server(self._health, serving_server)
        inference.add_inference_servicer(self._inference, serving_server or server)
        for name in HEALTH_SERVICES:
            await self._health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self._bind(server, serving_server)
        await server.start()
        self._server = server
        if config.gateway is not None:
            config.control_socket().chmod(0o600)
        if serving_server is not None:
            await serving_server.start()
            self._serving_server = serving_server
        self._write_port_file()
        # Only after the active models are loaded does the agent report SERVING.
        self.problems = await asyncio.to_thread(serving.restore)
        for name in HEALTH_SERVICES:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if config.gateway is not None:
            assert self.identity is not None  # gateway mode needs mTLS (settings)
            self.dialer = dialing.GatewayDialer(config, clock=self._clock, identity=self.identity)
            self._dialing = asyncio.create_task(self.dialer.run())
        log.info(
            "agent %s ready: control port %d, serving port %s",
            config.agent_id,
            self.control_port,
            self.serving_port,
        )

    def _new_server(self, *, receive_bytes: int, send_bytes: int, rpcs: int) -> grpc.aio.Server:
        return grpc.aio.server(
            interceptors=self._interceptors,
            maximum_concurrent_rpcs=rpcs,
            options=[
                ("grpc.max_receive_message_length", receive_bytes),
                ("grpc.max_send_message_length", send_bytes),
                # Clients keep long pushes and status streams alive with pings.
                ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
            ],
        )

    def _write_port_file(self) -> None:
        if self.config.port_file is None:
            return
        document: dict[str, object] = {
            "control": self.control_port,
            "serving": self.serving_port,
            "pid": os.getpid(),
        }
        if self.config.gateway is not None:
            document["control_socket"] = str(self.config.control_socket())
        self.config.port_file.parent.mkdir(parents=True, exist_ok=True)
        files.atomic_write(self.config.port_file, json.dumps(document).encode())

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, let running ones finish for `grace` seconds, then close."""
        if self._server is None:
            return
        if self._dialing is not None:
            self._dialing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dialing
            self._dialing = None
        await self._health.enter_graceful_shutdown()
        seconds = self.config.grace_seconds if grace is None else grace
        servers = [s for s in (self._server, self._serving_server) if s is not None]
        await asyncio.gather(*(s.stop(seconds) for s in servers))
        self._server = self._serving_server = None
        if self._inference is not None:
            self._inference.close()
        if self.core is not None:
            self.core.serving.close()
            self.core.store.close()
