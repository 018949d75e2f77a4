"""`edgewave status NAME --watch`: redraw a rollout's view until told to stop.

On a terminal the view is redrawn in place (rich `Live`) every `interval` seconds until
Ctrl-C or `limit` frames. When stdout is not a terminal (a pipe, a CI log) a frame is
printed only when the rollout changed, and the watch ends by itself once the rollout
settles (Succeeded, RolledBack or Failed), so `edgewave status r --watch | tee log` ends.
Reading is passed in, so the loop is tested without a cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rich.console import Console, RenderableType
from rich.live import Live


@dataclass(frozen=True, slots=True)
class Frame:
    view: RenderableType
    key: str
    """Changes exactly when the rollout did (its status as JSON, say)."""
    settled: bool
    """Nothing more happens by itself (a terminal or finished phase)."""


async def watch(
    read: Callable[[], Awaitable[Frame]],
    *,
    console: Console,
    interval: float,
    limit: int,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> int:
    """Show frames from `read` until the limit (or, piped, until settled); frames shown."""
    if not console.is_terminal:
        return await _piped(read, console=console, interval=interval, limit=limit, sleep=sleep)
    shown = 0
    frame = await read()
    with Live(frame.view, console=console, auto_refresh=False) as live:
        for _ in range(limit):
            live.update(frame.view, refresh=True)
            shown += 1
            await sleep(interval)
            frame = await read()
    return shown


async def _piped(
    read: Callable[[], Awaitable[Frame]],
    *,
    console: Console,
    interval: float,
    limit: int,
    sleep: Callable[[float], Awaitable[None]],
) -> int:
    shown, last = 0, None
    for turn in range(limit):
        if turn:
            await sleep(interval)
        frame = await read()
        if frame.key != last:
            console.print(frame.view)
            console.print()
            shown, last = shown + 1, frame.key
        if frame.settled:
            break
    return shown
