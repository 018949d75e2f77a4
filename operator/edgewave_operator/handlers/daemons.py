"""What a per-object kopf daemon needs around its turns, kept out of the turn itself.

kopf hands a daemon a live body (updated in place as the object changes), its indices
(key -> store of values) and a `stopped` flag. The rollout worker reads them here, sleeps
here until woken (`Runtime.wake`), stopped or due, and here watches the task carrying out
a decision's actions, cancelling it when the spec's model version changes or the daemon
stops (the rollout is superseded: builds and pushes in flight stop), and cancelling a mere
health watch when a new request arrives (a pause or an abort need not wait for the gate
window; the next turn watches again until the same end).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from edgewave_api import controls
from edgewave_api.errors import EdgewaveError
from edgewave_operator.planning import reconciling, stepping

log = logging.getLogger(__name__)


async def act_unless_superseded(
    decision: reconciling.Decision,
    *,
    acting: asyncio.Task[reconciling.Outcomes],
    body: Mapping[str, Any],
    stopped: Any,
    waker: asyncio.Event,
    key: str,
) -> reconciling.Outcomes:
    """`acting`'s outcomes, or none when it was cancelled (superseded, stopped) or failed."""
    version = decision.eligibility.version
    request = _request(body)
    watching_only = all(isinstance(a, stepping.Observe) for a in decision.actions)
    while not acting.done():
        await asyncio.wait({acting}, timeout=0.2)
        current = _version(body)
        if watching_only and _request(body) != request:
            acting.cancel()
            with contextlib.suppress(asyncio.CancelledError, EdgewaveError):
                await acting
            return reconciling.Outcomes()
        if stopped or (current is not None and current != version):
            acting.cancel()
            with contextlib.suppress(asyncio.CancelledError, EdgewaveError):
                await acting
            log.info(
                "rollout %s: version %s superseded by %s; work in flight cancelled",
                key,
                version,
                current,
                extra={"rollout": key},
            )
            return reconciling.Outcomes()
    failure = acting.exception()
    if failure is not None:
        log.error("rollout %s: acting failed: %r", key, failure)
        await sleep(waker, stopped=stopped, seconds=2.0)
        return reconciling.Outcomes()
    return acting.result()


async def sleep(waker: asyncio.Event, *, stopped: Any, seconds: float) -> None:
    """Until woken, stopped (kopf's daemon flag), or `seconds` passed."""
    if stopped:
        return

    async def until_stopped() -> None:
        await stopped.wait()

    waiting = {asyncio.ensure_future(waker.wait()), asyncio.ensure_future(until_stopped())}
    try:
        await asyncio.wait(waiting, timeout=max(0.05, seconds), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiting:
            task.cancel()


def values(index: Any) -> list[Any]:
    """Values of a kopf index (key -> store of values), or of a plain mapping."""
    found: list[Any] = []
    for value in index.values():
        if isinstance(value, Iterable) and not isinstance(value, str | bytes | dict):
            found.extend(value)
        else:
            found.append(value)
    return found


def _request(body: Mapping[str, Any]) -> str | None:
    """The request annotation's value (`edgewave_api.controls`), if any."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(controls.ANNOTATION)
    return str(value) if value is not None else None


def _version(body: Mapping[str, Any]) -> str | None:
    spec = body.get("spec") or {}
    model = spec.get("model") or {}
    version = model.get("version")
    return str(version) if version is not None else None
