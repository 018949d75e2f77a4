"""The dashboard's web app over real HTTP on loopback, fed a mirror directly (no cluster).

Checks the guard as wired (Host, method, read-only, Origin, token), the page's token and
CSP nonce, the JSON board, and that the event stream sends a new board after a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from edgewave_api.errors import PermanentError
from edgewave_operator.dashboard import guards, mirrors, running, serving
from edgewave_operator.lifecycle import actions
from tests.unit.dashboard import fixtures

TOKEN = "token-for-tests"


class Served:
    def __init__(self, base: str, mirror: mirrors.Mirror, calls: list[tuple[str, str, str]]):
        self.base, self.mirror, self.calls = base, mirror, calls
        self.host = base.removeprefix("http://").rstrip("/")


@contextlib.asynccontextmanager
async def _serve(*, allow_actions: bool) -> AsyncIterator[Served]:
    mirror = mirrors.Mirror()
    rollout = fixtures.rollout(status=fixtures.STATUS)
    mirror.replace(
        mirror.rollouts, [rollout.model_dump(by_alias=True, exclude_none=True, mode="json")]
    )
    calls: list[tuple[str, str, str]] = []

    async def act(action: actions.Action, namespace: str, name: str) -> actions.Change:
        calls.append((action.value, namespace, name))
        if name == "refuses":
            raise actions.NotApplicable("rollout shop/refuses is not paused")
        return actions.decide(action, rollout)

    sock = running.bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    policy = guards.Policy(
        allow_actions=allow_actions, token=TOKEN, hosts=guards.hosts_for("127.0.0.1", port)
    )
    app = serving.build(mirror=mirror, policy=policy, act=act, clock=lambda: fixtures.T0)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield Served(f"http://127.0.0.1:{port}/", mirror, calls)
    finally:
        await runner.cleanup()


async def _post(
    served: Served, path: str, *, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    own = {"Origin": f"http://{served.host}", guards.TOKEN_HEADER: TOKEN}
    async with (
        aiohttp.ClientSession() as session,
        session.post(served.base + path, headers=own | (headers or {})) as response,
    ):
        return response.status, await response.text()


def test_read_only_refuses_actions_with_403_and_one_line() -> None:
    async def run() -> None:
        async with _serve(allow_actions=False) as served:
            status, text = await _post(served, "api/rollouts/shop/classifier-global/pause")
            assert (status, text) == (
                403,
                "the dashboard is read-only: start it with --allow-actions to enable actions\n",
            )
            assert served.calls == []

    asyncio.run(run())


def test_actions_need_post_same_origin_and_the_token() -> None:
    async def run() -> None:
        async with _serve(allow_actions=True) as served:
            path = "api/rollouts/shop/classifier-global/pause"
            async with (
                aiohttp.ClientSession() as session,
                session.get(served.base + path) as response,
            ):
                assert response.status == 405
            status, text = await _post(served, path, headers={"Origin": "http://evil.example"})
            assert status == 403
            assert text.startswith("cross-origin request refused")
            status, text = await _post(served, path, headers={guards.TOKEN_HEADER: "guess"})
            assert (status, text.count("\n")) == (403, 1)
            assert "X-Edgewave-Token" in text
            status, text = await _post(served, path, headers={"Host": "rebound.example"})
            assert status == 403
            assert served.calls == []
            status, text = await _post(served, path)
            assert (status, text) == (
                200,
                "paused shop/classifier-global (spec.strategy.paused: false -> true)\n",
            )
            assert served.calls == [("pause", "shop", "classifier-global")]

    asyncio.run(run())


def test_unknown_actions_bad_names_and_refused_actions_are_one_line() -> None:
    async def run() -> None:
        async with _serve(allow_actions=True) as served:
            status, text = await _post(served, "api/rollouts/shop/classifier-global/nuke")
            assert (status, text) == (404, "unknown action 'nuke' (known: pause, resume)\n")
            status, text = await _post(served, "api/rollouts/shop/Bad_Name/pause")
            assert (status, text) == (400, "namespace and name must be DNS names\n")
            status, text = await _post(served, "api/rollouts/shop/refuses/resume")
            assert (status, text) == (409, "rollout shop/refuses is not paused\n")

    asyncio.run(run())


def test_the_page_embeds_the_token_and_a_fresh_csp_nonce() -> None:
    async def run() -> None:
        async with _serve(allow_actions=False) as served, aiohttp.ClientSession() as session:
            async with session.get(served.base) as response:
                page = await response.text()
                csp = response.headers["Content-Security-Policy"]
            assert f'<meta name="edgewave-token" content="{TOKEN}">' in page
            assert '<meta name="edgewave-actions" content="off">' in page
            nonce = re.search(r"'nonce-([^']+)'", csp)
            assert nonce is not None
            assert f'<script nonce="{nonce[1]}">' in page
            assert "{{" not in page
            assert "frame-ancestors 'none'" in csp
            async with session.get(served.base, headers={"Host": "evil.example"}) as response:
                assert response.status == 403

    asyncio.run(run())


def test_the_board_as_json() -> None:
    async def run() -> None:
        async with _serve(allow_actions=False) as served, aiohttp.ClientSession() as session:
            url = served.base + "api/board?rollout=shop/classifier-global"
            async with session.get(url) as response:
                board = await response.json()
            assert [r["rollout"] for r in board["rollouts"]] == ["shop/classifier-global"]
            assert board["detail"]["currentWave"] == "eu-central"
            assert board["allowActions"] is False

    asyncio.run(run())


async def _next_board(content: aiohttp.StreamReader) -> dict[str, Any]:
    for _ in range(50):
        line = await asyncio.wait_for(content.readline(), timeout=10)
        if line.startswith(b"data: "):
            found: dict[str, Any] = json.loads(line[len(b"data: ") :])
            return found
    raise AssertionError("no board in 50 lines")


def test_the_stream_sends_a_board_then_one_after_each_change() -> None:
    async def run() -> None:
        async with _serve(allow_actions=False) as served, aiohttp.ClientSession() as session:
            url = served.base + "api/stream?rollout=shop/classifier-global"
            async with session.get(url) as response:
                assert response.headers["Content-Type"] == "text/event-stream"
                first = await _next_board(response.content)
                assert first["detail"]["phase"] == "Progressing"
                body = fixtures.rollout(
                    status={**fixtures.STATUS, "phase": "Succeeded"}
                ).model_dump(by_alias=True, exclude_none=True, mode="json")
                served.mirror.apply(served.mirror.rollouts, event_type="MODIFIED", body=body)
                second = await _next_board(response.content)
                assert second["detail"]["phase"] == "Succeeded"
                served.mirror.trouble(served.mirror.agents, "edgeagents: cannot reach it")
                third = await _next_board(response.content)
                assert third["problem"] == "edgeagents: cannot reach it"

    asyncio.run(run())


def test_a_port_in_use_is_one_line_naming_it() -> None:
    first = running.bind("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        with pytest.raises(PermanentError) as raised:
            running.bind("127.0.0.1", port)
        assert str(raised.value).startswith(f"cannot listen on 127.0.0.1:{port} (")
        assert str(raised.value).endswith("choose another --port")
    finally:
        first.close()


def test_urls_of_addresses() -> None:
    assert running.url_of("127.0.0.1", 8480) == "http://127.0.0.1:8480/"
    assert running.url_of("::1", 8480) == "http://[::1]:8480/"
