"""Run the dashboard: connect to the API server, start the watchers, bind, serve until stopped.

The socket is bound before the app is built so the Host check knows the real port (port 0
picks a free one). The URL is printed once the page can be served; SIGINT or SIGTERM stop
the server, the watchers and the API client, in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import secrets
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from edgewave_api.errors import PermanentError
from edgewave_operator.dashboard import guards, mirrors, serving, watching
from edgewave_operator.kube import clients
from edgewave_operator.lifecycle import actions, applying

SHUTDOWN_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Options:
    address: str
    port: int
    allow_actions: bool
    kubeconfig: Path | None


def bind(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as error:
        sock.close()
        raise PermanentError(
            f"cannot listen on {address}:{port} ({error.strerror}); choose another --port"
        ) from None
    sock.listen(64)
    sock.setblocking(False)
    return sock


def url_of(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}/"


async def serve(options: Options, *, say: Callable[[str], None]) -> None:
    """Serve the dashboard until SIGINT or SIGTERM."""
    api = await clients.connect(options.kubeconfig)
    try:
        await clients.check(api)
        mirror = mirrors.Mirror()
        tasks = watching.start(api, mirror)
        address = "127.0.0.1" if options.address == "localhost" else options.address
        sock = bind(address, options.port)
        port = int(sock.getsockname()[1])
        policy = guards.Policy(
            allow_actions=options.allow_actions,
            token=secrets.token_urlsafe(32),
            hosts=guards.hosts_for(address, port),
        )

        async def act(action: actions.Action, namespace: str, name: str) -> actions.Change:
            return await applying.apply(api, action=action, name=name, namespace=namespace)

        app = serving.build(
            mirror=mirror,
            policy=policy,
            act=act,
            clock=lambda: datetime.datetime.now(datetime.UTC),
        )
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
        await runner.setup()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await web.SockSite(runner, sock).start()
            mode = "actions enabled" if options.allow_actions else "read-only"
            say(f"Edgewave dashboard on {url_of(address, port)} ({mode}; Ctrl-C to stop)")
            await stop.wait()
        finally:
            await runner.cleanup()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        await api.close()
