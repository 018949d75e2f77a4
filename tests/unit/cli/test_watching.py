"""`status --watch`'s loop with frames passed in: piped output and a terminal."""

from __future__ import annotations

import asyncio
import io

from rich.console import Console

from edgewave_operator.views import watching


def frames(*keys: str, settle_at: int | None = None) -> tuple[list[str], object]:
    seen: list[str] = []

    async def read() -> watching.Frame:
        index = min(len(seen), len(keys) - 1)
        key = keys[index]
        seen.append(key)
        return watching.Frame(view=f"frame {key}", key=key, settled=settle_at == index)

    return seen, read


async def no_sleep(_: float) -> None:
    return None


def test_piped_prints_only_changes_and_stops_when_settled() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, color_system=None, force_terminal=False)
    seen, read = frames("a", "a", "b", "b", "c", settle_at=4)
    shown = asyncio.run(
        watching.watch(read, console=console, interval=1, limit=100, sleep=no_sleep)  # type: ignore[arg-type]
    )
    assert shown == 3
    assert out.getvalue().split() == ["frame", "a", "frame", "b", "frame", "c"]
    assert len(seen) == 5  # it stopped reading once settled


def test_piped_stops_at_the_limit_when_nothing_settles() -> None:
    console = Console(file=io.StringIO(), width=80, color_system=None, force_terminal=False)
    seen, read = frames("a")
    asyncio.run(watching.watch(read, console=console, interval=1, limit=7, sleep=no_sleep))  # type: ignore[arg-type]
    assert len(seen) == 7


def test_a_terminal_redraws_in_place_up_to_the_limit() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, color_system=None, force_terminal=True)
    seen, read = frames("a", "b", "c")
    shown = asyncio.run(
        watching.watch(read, console=console, interval=1, limit=3, sleep=no_sleep)  # type: ignore[arg-type]
    )
    assert shown == 3 and len(seen) == 4
    assert "frame c" in out.getvalue()
