"""The dashboard's copy of the cluster: listings, watch events, Events, staleness, waiting."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from edgewave_operator.dashboard import mirrors
from tests.unit.dashboard import fixtures


def _rollout_body(**status: Any) -> dict[str, Any]:
    rollout = fixtures.rollout(status={**fixtures.STATUS, **status})
    return rollout.model_dump(by_alias=True, exclude_none=True, mode="json")


def _event(name: str, minute: int, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "shop"},
        "involvedObject": {
            "kind": "ModelRollout",
            "name": "classifier-global",
            "namespace": "shop",
        },
        "type": "Normal",
        "reason": "WavePassed",
        "message": "passed",
        "lastTimestamp": f"2026-01-02T03:{minute:02d}:00Z",
        "count": 2,
    }
    body.update(changes)
    return body


def test_listing_then_watch_events_update_the_copy_and_bump_the_version() -> None:
    mirror = mirrors.Mirror()
    mirror.replace(mirror.rollouts, [_rollout_body()])
    assert mirror.version == 1
    key = ("shop", "classifier-global")
    assert mirror.rollouts.items[key].status.phase == "Progressing"  # type: ignore[union-attr]
    mirror.apply(mirror.rollouts, event_type="MODIFIED", body=_rollout_body(phase="Succeeded"))
    assert mirror.rollouts.items[key].status.phase == "Succeeded"  # type: ignore[union-attr]
    mirror.apply(mirror.rollouts, event_type="DELETED", body=_rollout_body())
    assert mirror.rollouts.items == {}
    assert mirror.version == 3
    # Deleting what is not there changes nothing.
    mirror.apply(mirror.rollouts, event_type="DELETED", body=_rollout_body())
    assert mirror.version == 3


def test_an_object_the_schema_refuses_is_dropped_not_fatal() -> None:
    mirror = mirrors.Mirror()
    bad = _rollout_body()
    bad["spec"]["strategy"]["waves"] = []
    mirror.replace(mirror.rollouts, [bad, {"metadata": {"name": "x"}}])
    assert mirror.rollouts.items == {}
    mirror.apply(mirror.rollouts, event_type="ADDED", body=_rollout_body())
    mirror.apply(mirror.rollouts, event_type="MODIFIED", body=bad)
    assert mirror.rollouts.items == {}


def test_events_parse_with_their_time_and_count() -> None:
    line = mirrors.parse_event(_event("e1", 4))
    assert line is not None
    assert (line.kind, line.namespace, line.name, line.reason, line.count) == (
        "ModelRollout",
        "shop",
        "classifier-global",
        "WavePassed",
        2,
    )
    assert line.time == datetime.datetime(2026, 1, 2, 3, 4, tzinfo=datetime.UTC)
    fallback = mirrors.parse_event(
        _event("e2", 0, lastTimestamp=None, eventTime="2026-01-02T03:05:06.123456Z", count=-1)
    )
    assert fallback is not None
    assert fallback.time == datetime.datetime(2026, 1, 2, 3, 5, 6, 123456, tzinfo=datetime.UTC)
    assert fallback.count == 1
    assert mirrors.parse_event(_event("e3", 0, involvedObject={})) is None
    assert mirrors.parse_event(_event("e4", 0, involvedObject="nope")) is None
    garbled = mirrors.parse_event(_event("e5", 0, lastTimestamp="yesterday", message="m" * 5000))
    assert garbled is not None
    assert garbled.time is None
    assert len(garbled.message) == 1024


def test_events_are_bounded_oldest_first() -> None:
    mirror = mirrors.Mirror()
    bodies = [
        _event(f"e{i}", 0, lastTimestamp=f"2026-01-02T03:{i // 60:02d}:{i % 60:02d}Z")
        for i in range(mirrors.MAX_EVENTS + 10)
    ]
    mirror.replace(mirror.events, bodies)
    assert len(mirror.events.items) == mirrors.MAX_EVENTS
    assert ("shop", "e0") not in mirror.events.items
    assert ("shop", f"e{mirrors.MAX_EVENTS + 9}") in mirror.events.items


def test_trouble_is_recorded_once_and_cleared() -> None:
    mirror = mirrors.Mirror()
    mirror.trouble(mirror.agents, "edgeagents: cannot reach the API server")
    mirror.trouble(mirror.agents, "edgeagents: cannot reach the API server")
    assert mirror.version == 1
    mirror.trouble(mirror.events, "events: 403 Forbidden")
    assert mirror.problem == "edgeagents: cannot reach the API server; events: 403 Forbidden"
    mirror.trouble(mirror.agents, None)
    mirror.trouble(mirror.events, None)
    mirror.trouble(mirror.events, None)
    assert mirror.problem is None
    assert mirror.version == 4


def test_wait_returns_on_a_change_or_after_the_bound() -> None:
    async def run() -> None:
        mirror = mirrors.Mirror()
        assert await mirror.wait(0, within=0.01) == 0
        waiter = asyncio.create_task(mirror.wait(0, within=30))
        await asyncio.sleep(0)
        mirror.replace(mirror.policies, [])
        assert await asyncio.wait_for(waiter, timeout=5) == 1
        # Already past what the caller saw: no wait at all.
        assert await mirror.wait(0, within=30) == 1

    asyncio.run(run())
