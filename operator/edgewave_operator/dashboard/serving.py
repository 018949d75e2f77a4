"""The dashboard's web app (aiohttp): the page, the board as JSON and as server-sent events,
and the lifecycle actions.

- `GET /` the page, with the per-process token and a CSP nonce filled in;
- `GET /api/board?rollout=NS/NAME` the board (rollout list, and that rollout's detail);
- `GET /api/stream?rollout=NS/NAME` the same board as server-sent events, one each time
  the mirror changes (bursts coalesced), with a comment every `KEEPALIVE` seconds;
- `POST /api/rollouts/NS/NAME/ACTION` one action, through `guards.check_action`, then
  `act` (in production `lifecycle.applying.apply`); the answer is one line of text.

Every request first passes `guards.check_host`. The app reads only the mirror; the clock is
passed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import html
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from edgewave_api.errors import EdgewaveError
from edgewave_operator.dashboard import guards, mirrors
from edgewave_operator.lifecycle import actions

KEEPALIVE = 15.0
COALESCE = 0.1
"""Seconds to gather a burst of changes into one server-sent event."""
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")

Act = Callable[[actions.Action, str, str], Awaitable[actions.Change]]
"""(action, namespace, name) -> the change made."""
Clock = Callable[[], datetime.datetime]

_POLICY = web.AppKey("policy", guards.Policy)
_MIRROR = web.AppKey("mirror", mirrors.Mirror)
_ACT: web.AppKey[Act] = web.AppKey("act")
_CLOCK: web.AppKey[Clock] = web.AppKey("clock")
_CLOSING = web.AppKey("closing", asyncio.Event)


def page_template() -> str:
    return resources.files("edgewave_operator.dashboard").joinpath("page.html").read_text()


def _request(request: web.Request) -> guards.Request:
    return guards.Request(
        method=request.method,
        host=request.headers.get("Host"),
        origin=request.headers.get("Origin"),
        fetch_site=request.headers.get("Sec-Fetch-Site"),
        token=request.headers.get(guards.TOKEN_HEADER),
    )


def _refuse(refusal: guards.Refusal) -> web.Response:
    return web.Response(status=refusal.status, text=refusal.reason + "\n")


@web.middleware
async def _headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    refused = guards.check_host(_request(request), request.app[_POLICY])
    if refused is not None:
        return _refuse(refused)
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def _page(request: web.Request) -> web.Response:
    policy = request.app[_POLICY]
    nonce = secrets.token_urlsafe(16)
    body = (
        page_template()
        .replace("{{NONCE}}", nonce)
        .replace("{{TOKEN}}", html.escape(policy.token))
        .replace("{{ACTIONS}}", "on" if policy.allow_actions else "off")
    )
    response = web.Response(text=body, content_type="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return response


def _selected(request: web.Request) -> str | None:
    value = request.query.get("rollout")
    return value[:300] if value else None


def _board(request: web.Request) -> dict[str, Any]:
    board = request.app[_MIRROR].board(selected=_selected(request), now=request.app[_CLOCK]())
    board["allowActions"] = request.app[_POLICY].allow_actions
    return board


async def _board_json(request: web.Request) -> web.Response:
    return web.json_response(_board(request))


async def _stream(request: web.Request) -> web.StreamResponse:
    mirror, closing = request.app[_MIRROR], request.app[_CLOSING]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")
    sent = -1
    with contextlib.suppress(ConnectionResetError):  # the page went away
        while not closing.is_set():
            version = mirror.version
            if version != sent:
                data = json.dumps(_board(request), separators=(",", ":"))
                await response.write(f"data: {data}\n\n".encode())
                sent = version
            if await mirror.wait(sent, within=KEEPALIVE) == sent:
                await response.write(b": keepalive\n\n")
            else:
                await asyncio.sleep(COALESCE)
    return response


async def _act(request: web.Request) -> web.Response:
    refused = guards.check_action(_request(request), request.app[_POLICY])
    if refused is not None:
        return _refuse(refused)
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    if not (_NAME.match(namespace) and _NAME.match(name)):
        return _refuse(guards.Refusal(400, "namespace and name must be DNS names"))
    try:
        action = actions.parse(request.match_info["action"])
    except actions.NotApplicable as error:
        return _refuse(guards.Refusal(404, str(error)))
    try:
        change = await request.app[_ACT](action, namespace, name)
    except actions.NotApplicable as error:
        return _refuse(guards.Refusal(409, str(error)))
    except EdgewaveError as error:
        return _refuse(guards.Refusal(502, str(error).splitlines()[0]))
    return web.Response(text=change.summary + "\n")


async def _wake_streams(app: web.Application) -> None:
    app[_CLOSING].set()


def build(
    *,
    mirror: mirrors.Mirror,
    policy: guards.Policy,
    act: Act,
    clock: Clock,
) -> web.Application:
    app = web.Application(middlewares=[_headers], client_max_size=4096)
    app[_POLICY], app[_MIRROR], app[_ACT], app[_CLOCK] = policy, mirror, act, clock
    app[_CLOSING] = asyncio.Event()
    app.on_shutdown.append(_wake_streams)
    app.router.add_get("/", _page)
    app.router.add_get("/api/board", _board_json)
    app.router.add_get("/api/stream", _stream)
    app.router.add_route("*", "/api/rollouts/{namespace}/{name}/{action}", _act)
    return app
