"""The dashboard's copy of the cluster: rollouts, agents, policies and recent Events.

Written by the watchers, read by the page's requests. Every change bumps `version` and
wakes whoever waits for one, so a server-sent-events stream sends a new board only when
something changed. `problem` says why the copy may be stale (a watch that cannot reach
the API server), per source, so the page can say so instead of showing old data as live.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from edgewave_api import edgeagent, modelrollout, residencypolicy
from edgewave_operator.views import boards

T = TypeVar("T")
Key = tuple[str, str]
"""(namespace or "", name)"""

MAX_EVENTS = 500
"""Events kept over all objects; the oldest go first."""


class Kind(Generic[T]):
    """One watched resource: its objects by key, parsed by `parse` (None drops an object)."""

    def __init__(self, name: str, parse: Callable[[Mapping[str, Any]], T | None]) -> None:
        self.name = name
        self.parse = parse
        self.items: dict[Key, T] = {}


def key_of(body: Mapping[str, Any]) -> Key:
    metadata = body.get("metadata") or {}
    return (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))


def _pydantic(model: Any) -> Callable[[Mapping[str, Any]], Any]:
    def parse(body: Mapping[str, Any]) -> Any:
        try:
            return model.model_validate(body)
        except ValueError:
            return None  # an object the API's schema should have refused: not shown

    return parse


def _time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_event(body: Mapping[str, Any]) -> boards.EventLine | None:
    """A core/v1 Event as an `EventLine`; None when it names no object."""
    involved = body.get("involvedObject") or {}
    if not isinstance(involved, Mapping) or not involved.get("name"):
        return None
    metadata = body.get("metadata") or {}
    when = (
        _time(body.get("lastTimestamp"))
        or _time(body.get("eventTime"))
        or _time(body.get("firstTimestamp"))
        or _time(metadata.get("creationTimestamp"))
    )
    count = body.get("count")
    return boards.EventLine(
        kind=str(involved.get("kind") or ""),
        namespace=str(involved["namespace"]) if involved.get("namespace") else None,
        name=str(involved["name"]),
        type=str(body.get("type") or ""),
        reason=str(body.get("reason") or ""),
        message=str(body.get("message") or "")[:1024],
        time=when,
        count=count if isinstance(count, int) and count > 0 else 1,
    )


class Mirror:
    """The objects the dashboard shows, as last seen, and a way to wait for a change."""

    def __init__(self) -> None:
        self.rollouts: Kind[modelrollout.ModelRollout] = Kind(
            "modelrollouts", _pydantic(modelrollout.ModelRollout)
        )
        self.agents: Kind[edgeagent.EdgeAgent] = Kind("edgeagents", _pydantic(edgeagent.EdgeAgent))
        self.policies: Kind[residencypolicy.ResidencyPolicy] = Kind(
            "residencypolicies", _pydantic(residencypolicy.ResidencyPolicy)
        )
        self.events: Kind[boards.EventLine] = Kind("events", parse_event)
        self.version = 0
        self.problems: dict[str, str] = {}
        self._tick = asyncio.Event()

    def _changed(self) -> None:
        self.version += 1
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    def replace(self, kind: Kind[T], bodies: Sequence[Mapping[str, Any]]) -> None:
        """All of `kind`'s objects, as a fresh listing gave them."""
        items: dict[Key, T] = {}
        for body in bodies:
            parsed = kind.parse(body)
            if parsed is not None:
                items[key_of(body)] = parsed
        kind.items = items
        self._trim(kind)
        self._changed()

    def apply(self, kind: Kind[T], *, event_type: str, body: Mapping[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED) of `kind`."""
        key = key_of(body)
        parsed = None if event_type == "DELETED" else kind.parse(body)
        if parsed is None:
            if kind.items.pop(key, None) is None:
                return
        else:
            kind.items[key] = parsed
            self._trim(kind)
        self._changed()

    def _trim(self, kind: Kind[T]) -> None:
        if kind is self.events and len(kind.items) > MAX_EVENTS:
            floor = datetime.datetime.min.replace(tzinfo=datetime.UTC)
            ordered = sorted(
                kind.items.items(), key=lambda kv: self.events.items[kv[0]].time or floor
            )
            for key, _ in ordered[: len(kind.items) - MAX_EVENTS]:
                del kind.items[key]

    def trouble(self, kind: Kind[Any], problem: str | None) -> None:
        """Record (or clear, with None) why `kind` may be stale."""
        if problem is None:
            if self.problems.pop(kind.name, None) is None:
                return
        elif self.problems.get(kind.name) == problem:
            return
        else:
            self.problems[kind.name] = problem
        self._changed()

    @property
    def problem(self) -> str | None:
        return "; ".join(self.problems[k] for k in sorted(self.problems)) or None

    async def wait(self, seen: int, *, within: float) -> int:
        """The version once it is past `seen`, or after `within` seconds at the latest."""
        if self.version == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tick.wait(), timeout=within)
        return self.version

    def board(self, *, selected: str | None, now: datetime.datetime) -> dict[str, Any]:
        return boards.board(
            found=list(self.rollouts.items.values()),
            selected=selected,
            agents=list(self.agents.items.values()),
            policies=list(self.policies.items.values()),
            events=self.events.items.values(),
            now=now,
            problem=self.problem,
        )
