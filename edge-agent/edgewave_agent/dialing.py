"""The agent's one long-lived session with its gateway (agents behind NAT dial out).

`GatewayDialer.run` keeps a Session stream open over mTLS with HTTP/2 keepalives: Hello,
then heartbeats at the interval the gateway asks for, pongs to its pings, and a Call stream
(`tunnelling.serve_call`) for each call the gateway signals. When the session ends (the
gateway restarted, the link dropped) it reconnects after a jittered exponential backoff,
bounded by `backoff_max_seconds` and reset once a session is welcomed; a session closed
because a newer one claimed this agent's name waits the longest backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import grpc

from edgewave_agent import inventory, tunnelling
from edgewave_agent.identity import AgentIdentity
from edgewave_agent.settings import AgentConfig
from edgewave_proto.gateway.v1 import gateway_pb2 as gw

log = logging.getLogger(__name__)
SESSION_METHOD = "/edgewave.gateway.v1.AgentTunnel/Session"
_MAX_DOUBLINGS = 30


def backoff_delay(failures: int, *, initial: float, maximum: float, rng: random.Random) -> float:
    """Seconds to wait after `failures` failed attempts in a row: exponential, capped, with
    "equal jitter" (between half and all of the step), so a fleet that lost its gateway at
    once does not reconnect at once, and no wait is ever near zero. Pure but for `rng`."""
    step = min(maximum, initial * (2 ** min(failures, _MAX_DOUBLINGS)))
    delay: float = step / 2 + rng.uniform(0, step / 2)
    return delay


class GatewayDialer:
    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        identity: AgentIdentity,
    ) -> None:
        assert config.gateway is not None
        self._config = config
        self._link = config.gateway
        self._clock = clock
        self._rng = rng or random.Random()
        self.connected = asyncio.Event()
        self.session_id = ""
        self.sessions_opened = 0
        self._calls: set[asyncio.Task[None]] = set()
        self._identity = identity

    def _credentials(self) -> grpc.ChannelCredentials:
        ca = self._link.ca_file or self._config.tls.client_ca_file
        assert ca is not None
        current = self._identity.current()  # its renewed pair, once it has one
        return grpc.ssl_channel_credentials(ca.read_bytes(), current.key_pem, current.cert_pem)

    def _options(self) -> list[tuple[str, Any]]:
        limit = int(self._config.max_message_bytes) + (64 << 10)
        options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            ("grpc.keepalive_time_ms", int(self._link.keepalive_seconds * 1000)),
            ("grpc.keepalive_timeout_ms", int(self._link.keepalive_timeout_seconds * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            # This dialer owns reconnection and its backoff; one channel per session.
            ("grpc.enable_retries", 0),
        ]
        if self._link.server_name:
            options.append(("grpc.ssl_target_name_override", self._link.server_name))
        return options

    async def run(self) -> None:
        """Keep a session open until cancelled."""
        limit = int(self._config.max_message_bytes)
        local = grpc.aio.insecure_channel(
            f"unix:{self._config.control_socket()}",
            options=[
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
            ],
        )
        failures = 0
        try:
            while True:
                superseded = False
                try:
                    superseded = await self._session(local)
                except grpc.RpcError as error:
                    code = error.code() if hasattr(error, "code") else None
                    details = error.details() if hasattr(error, "details") else error
                    log.warning(
                        "gateway %s: session failed (%s): %s",
                        self._link.address,
                        getattr(code, "name", code),
                        details,
                    )
                if self.session_id:
                    failures = 0
                    self.session_id = ""
                delay = backoff_delay(
                    failures,
                    initial=self._link.backoff_initial_seconds,
                    maximum=self._link.backoff_max_seconds,
                    rng=self._rng,
                )
                if superseded:
                    delay = self._link.backoff_max_seconds
                failures += 1
                await asyncio.sleep(delay)
        finally:
            for task in list(self._calls):
                task.cancel()
            await local.close(grace=None)

    async def _session(self, local: grpc.aio.Channel) -> bool:
        """One session, until it ends; True when a newer session superseded it."""
        channel = grpc.aio.secure_channel(
            self._link.address, self._credentials(), options=self._options()
        )
        outbox: asyncio.Queue[gw.AgentSignal] = asyncio.Queue()
        tasks: list[asyncio.Task[None]] = []
        try:
            call: Any = channel.stream_stream(
                SESSION_METHOD,
                request_serializer=gw.AgentSignal.SerializeToString,
                response_deserializer=gw.GatewaySignal.FromString,
            )(None)
            config = self._config
            await outbox.put(
                gw.AgentSignal(
                    hello=gw.Hello(
                        agent_id=config.agent_id,
                        region=config.region,
                        zone=config.zone,
                        agent_version=inventory.agent_version(),
                    )
                )
            )
            tasks.append(asyncio.create_task(_write_all(call, outbox)))
            while (signal := await call.read()) is not tunnelling.EOF:
                kind = signal.WhichOneof("kind")
                if kind == "welcome":
                    self.session_id = signal.welcome.session_id
                    self.sessions_opened += 1
                    self.connected.set()
                    interval = signal.welcome.heartbeat_seconds or 10.0
                    tasks.append(asyncio.create_task(self._beat(outbox, interval)))
                    log.info("gateway %s: session open", self._link.address)
                elif kind == "open_call":
                    task = asyncio.create_task(
                        tunnelling.serve_call(
                            gateway=channel,
                            local=local,
                            session_id=self.session_id,
                            request=signal.open_call,
                            busy=len(self._calls) >= tunnelling.MAX_CALLS,
                        )
                    )
                    self._calls.add(task)
                    task.add_done_callback(self._calls.discard)
                elif kind == "ping":
                    await outbox.put(gw.AgentSignal(pong=gw.Pong(nonce=signal.ping.nonce)))
                elif kind == "goodbye":
                    log.warning("gateway %s: %s", self._link.address, signal.goodbye.reason)
                    return bool(signal.goodbye.superseded)
            return False
        finally:
            self.connected.clear()
            for task in tasks:
                task.cancel()
            await channel.close(grace=None)

    async def _beat(self, outbox: asyncio.Queue[gw.AgentSignal], interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await outbox.put(
                gw.AgentSignal(heartbeat=gw.Heartbeat(time_unix_seconds=self._clock()))
            )


async def _write_all(call: Any, outbox: asyncio.Queue[gw.AgentSignal]) -> None:
    """The session's one writer: gRPC allows a single write in flight per call."""
    with contextlib.suppress(grpc.RpcError, asyncio.InvalidStateError):
        while True:
            await call.write(await outbox.get())
