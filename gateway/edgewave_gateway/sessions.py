"""The agents' live sessions, and the calls the gateway asks them to open.

A `Session` is one agent's long-lived Session stream: the signals waiting to go down it
(OpenCall, Ping, Goodbye), when it connected and was last heard from, and the calls it was
asked to open but has not attached yet. A `CallLeg` is one relayed call once the agent has
attached its Call stream: two bounded queues (frames down to the agent, frames up from it),
so HTTP/2 flow control on either side holds the other back.

`Registry` keeps at most one session per agent name. When a second session claims a name,
the older one is pinged first (so the log says whether it was dead or a live duplicate);
the newest wins either way and the older one is told Goodbye.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from edgewave_proto.gateway.v1 import gateway_pb2 as gw

log = logging.getLogger(__name__)
# Frames in flight per direction of one call (each up to a message, ~1 MiB for a push).
LEG_QUEUE_FRAMES = 4
_T = TypeVar("_T")


class SessionGone(Exception):
    """The agent has no session, or it ended, or it did not attach a call in time."""


@dataclass
class CallLeg:
    """One attached call: frames down to the agent and up from it; None ends a direction."""

    call_id: int
    down: asyncio.Queue[gw.CallDown | None] = field(
        default_factory=lambda: asyncio.Queue(LEG_QUEUE_FRAMES)
    )
    up: asyncio.Queue[gw.CallUp | None] = field(
        default_factory=lambda: asyncio.Queue(LEG_QUEUE_FRAMES)
    )
    # Set by the caller's side when it is done with the call; `cancelled` if it gave up.
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when the agent's Call stream has ended (no more frames up).
    up_ended: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False

    def finish(self, *, cancelled: bool) -> None:
        self.cancelled = cancelled
        self.finished.set()

    async def next_down(self) -> gw.CallDown | None:
        """The next frame for the agent; None once the caller is done with the call."""
        return await _next(self.down, self.finished)

    async def next_up(self) -> gw.CallUp | None:
        """The next frame from the agent; None once its Call stream has ended."""
        return await _next(self.up, self.up_ended)


async def _next(queue: asyncio.Queue[_T | None], ended: asyncio.Event) -> _T | None:
    if not queue.empty():
        return queue.get_nowait()
    if ended.is_set():
        return None
    getter = asyncio.ensure_future(queue.get())
    waiter = asyncio.ensure_future(ended.wait())
    try:
        await asyncio.wait((getter, waiter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not getter.done():
            getter.cancel()
    if getter.done() and not getter.cancelled():
        return getter.result()
    return queue.get_nowait() if not queue.empty() else None


@dataclass
class Session:
    agent: str
    peer: str
    connected_since: float
    last_seen: float
    region: str = ""
    zone: str = ""
    agent_version: str = ""
    session_id: str = field(default_factory=lambda: secrets.token_hex(12))
    _outbox: asyncio.Queue[gw.GatewaySignal | None] = field(default_factory=asyncio.Queue)
    _pending: dict[int, asyncio.Future[CallLeg]] = field(default_factory=dict)
    _pongs: dict[int, asyncio.Future[None]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    closed: bool = False
    # Calls asked for or attached and not yet finished (bounded by max_calls_per_agent).
    calls_in_flight: int = 0

    def touch(self, now: float) -> None:
        self.last_seen = max(self.last_seen, now)

    async def next_signal(self) -> gw.GatewaySignal | None:
        """The next signal to send down the session; None once the session is closed."""
        if self.closed and self._outbox.empty():
            return None
        return await self._outbox.get()

    def close(self, goodbye: gw.Goodbye | None = None) -> None:
        """End the session: fail calls waiting to attach, say goodbye, stop the stream."""
        if self.closed:
            return
        self.closed = True
        futures: list[asyncio.Future[Any]] = [*self._pending.values(), *self._pongs.values()]
        for future in futures:
            if not future.done():
                future.set_exception(SessionGone(f"the session of agent {self.agent} ended"))
        if goodbye is not None:
            self._outbox.put_nowait(gw.GatewaySignal(goodbye=goodbye))
        self._outbox.put_nowait(None)

    @property
    def calls_waiting(self) -> int:
        return len(self._pending)

    async def open_call(self, request: gw.OpenCall, *, attach_timeout: float) -> CallLeg:
        """Ask the agent to open a call and wait until it has attached its Call stream."""
        if self.closed:
            raise SessionGone(f"the session of agent {self.agent} ended")
        call_id = next(self._ids)
        future: asyncio.Future[CallLeg] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        request.call_id = call_id
        self._outbox.put_nowait(gw.GatewaySignal(open_call=request))
        try:
            return await asyncio.wait_for(future, attach_timeout)
        except TimeoutError:
            raise SessionGone(
                f"agent {self.agent} did not open call {call_id} within {attach_timeout:g}s"
            ) from None
        finally:
            self._pending.pop(call_id, None)

    def attach(self, call_id: int) -> CallLeg | None:
        """The leg for `call_id`, handed to the waiting caller; None if nobody waits for it."""
        future = self._pending.pop(call_id, None)
        if future is None or future.done():
            return None
        leg = CallLeg(call_id=call_id)
        future.set_result(leg)
        return leg

    async def ping(self, *, within: float) -> bool:
        """Whether the agent at the other end answers a ping within `within` seconds."""
        if self.closed:
            return False
        nonce = secrets.randbits(63)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pongs[nonce] = future
        self._outbox.put_nowait(gw.GatewaySignal(ping=gw.Ping(nonce=nonce)))
        try:
            await asyncio.wait_for(future, within)
            return True
        except (TimeoutError, SessionGone):
            return False
        finally:
            self._pongs.pop(nonce, None)

    def pong(self, nonce: int) -> None:
        future = self._pongs.get(nonce)
        if future is not None and not future.done():
            future.set_result(None)


class Registry:
    """The live sessions by agent name and by session id; watchers hear of every change."""

    def __init__(self, *, ping_timeout: float) -> None:
        self._by_agent: dict[str, Session] = {}
        self._by_id: dict[str, Session] = {}
        self._ping_timeout = ping_timeout
        self._listeners: list[Callable[[], None]] = []
        self.version = 0

    def get(self, agent: str) -> Session | None:
        return self._by_agent.get(agent)

    def by_id(self, session_id: str) -> Session | None:
        return self._by_id.get(session_id)

    def sessions(self) -> list[Session]:
        return sorted(self._by_agent.values(), key=lambda s: s.agent)

    def listen(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` after every change; returns the function that stops it."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def changed(self) -> None:
        self.version += 1
        for callback in list(self._listeners):
            callback()

    async def add(self, session: Session) -> None:
        """Make `session` the agent's session; an older one is closed (newest wins)."""
        older = self._by_agent.get(session.agent)
        if older is not None:
            alive = await older.ping(within=self._ping_timeout)
            if alive:
                log.warning(
                    "two live sessions claim agent %s (%s and %s): the newest wins; check"
                    " that no two agents share one certificate",
                    session.agent,
                    older.peer,
                    session.peer,
                )
            else:
                log.info("agent %s reconnected; its old session was dead", session.agent)
            older.close(
                gw.Goodbye(
                    reason=f"superseded by a newer session from {session.peer}", superseded=True
                )
            )
            self._remove(older)
        if session.closed:
            return
        current = self._by_agent.get(session.agent)
        if current is not None and current is not session:
            # Another newer session arrived while the old one was pinged: this one lost.
            session.close(gw.Goodbye(reason="superseded by a newer session", superseded=True))
            return
        self._by_agent[session.agent] = session
        self._by_id[session.session_id] = session
        self.changed()

    def remove(self, session: Session) -> None:
        if self._remove(session):
            self.changed()

    def _remove(self, session: Session) -> bool:
        self._by_id.pop(session.session_id, None)
        if self._by_agent.get(session.agent) is session:
            del self._by_agent[session.agent]
            return True
        return False
