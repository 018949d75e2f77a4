"""The gateway as an object: build it, `start()` it, `stop()` it; embeddable in any process.

One gRPC port with mTLS in both directions serves the agents (AgentTunnel), the operator
(GatewayService) and the relayed AgentService methods; the client certificate's role
decides which a caller may use (`peers`). `edgewave gateway run` wraps this; the operator
can run one in its own process later.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import message_factory

from edgewave_gateway import cache, delivering, relaying, service, sessions, tunnel
from edgewave_gateway.settings import GatewayConfig
from edgewave_proto.gateway.v1 import gateway_pb2, gateway_pb2_grpc

log = logging.getLogger(__name__)
_HANDLER_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _add_gateway_service(servicer: service.GatewayServicer, server: grpc.aio.Server) -> None:
    """GatewayService from its descriptor; PushEngine takes raw bytes (read in place)."""
    descriptor = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"]
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in descriptor.methods:
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        make = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=None if method.name == "PushEngine" else request.FromString,
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(descriptor.full_name, handlers),)
    )


class Gateway:
    def __init__(self, config: GatewayConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self.registry = sessions.Registry(ping_timeout=config.ping_timeout_seconds)
        self.cache = cache.EngineCache(
            config.cache.directory,
            capacity_bytes=int(config.cache.capacity_bytes),
            checkpoint_bytes=int(config.cache.checkpoint_bytes),
            clock=clock,
        )
        self.port = 0
        self._server: grpc.aio.Server | None = None

    def _credentials(self) -> grpc.ServerCredentials:
        tls = self.config.tls
        return grpc.ssl_server_credentials(
            [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
            root_certificates=tls.client_ca_file.read_bytes(),
            require_client_auth=True,
        )

    async def start(self) -> None:
        config = self.config
        limit = int(config.max_message_bytes)
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                # Agents keep their sessions alive with pings, with or without calls.
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 1_000),
                ("grpc.http2.max_ping_strikes", 0),
                # Find agents that vanished without closing their connection.
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.keepalive_timeout_ms", 10_000),
            ]
        )
        gateway_pb2_grpc.add_AgentTunnelServicer_to_server(
            tunnel.AgentTunnel(config=config, registry=self.registry, clock=self._clock), server
        )
        delivery = delivering.Delivery(config=config, registry=self.registry, engines=self.cache)
        _add_gateway_service(
            service.GatewayServicer(
                config=config,
                registry=self.registry,
                engines=self.cache,
                delivery=delivery,
                clock=self._clock,
            ),
            server,
        )
        server.add_generic_rpc_handlers((relaying.Relay(config=config, registry=self.registry),))
        self.port = server.add_secure_port(config.listen, self._credentials())
        if not self.port:
            raise OSError(f"cannot bind {config.listen}")
        await server.start()
        self._server = server
        if config.port_file is not None:
            config.port_file.parent.mkdir(parents=True, exist_ok=True)
            temporary = config.port_file.with_name(f".{config.port_file.name}.tmp")
            temporary.write_text(json.dumps({"port": self.port, "pid": os.getpid()}))
            temporary.replace(config.port_file)
        log.info("gateway %s listening on port %d", config.name, self.port)

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()

    async def stop(self, grace: float | None = None) -> None:
        if self._server is None:
            return
        for session in self.registry.sessions():
            session.close()
        await self._server.stop(self.config.grace_seconds if grace is None else grace)
        self._server = None
