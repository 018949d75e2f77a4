"""Sessions in memory: calls wait for their agent to attach, and are bounded per agent."""

from __future__ import annotations

import asyncio

import pytest

from edgewave_gateway import calls, sessions


def test_calls_are_bounded_per_agent_and_released_when_closed() -> None:
    async def scenario() -> None:
        registry = sessions.Registry(ping_timeout=0.1)
        session = sessions.Session(agent="edge-1", peer="p", connected_since=0.0, last_seen=0.0)
        await registry.add(session)

        async def agent_side() -> None:
            while (signal := await session.next_signal()) is not None:
                if signal.WhichOneof("kind") == "open_call":
                    assert session.attach(signal.open_call.call_id) is not None

        attaching = asyncio.create_task(agent_side())
        first = await calls.open_call(
            registry, agent="edge-1", method="/m", attach_timeout=1, max_calls=1
        )
        with pytest.raises(calls.TooManyCalls, match="1 calls in flight"):
            await calls.open_call(
                registry, agent="edge-1", method="/m", attach_timeout=1, max_calls=1
            )
        first.close(cancelled=False)
        first.close(cancelled=False)  # closing twice releases once
        assert session.calls_in_flight == 0
        second = await calls.open_call(
            registry, agent="edge-1", method="/m", attach_timeout=1, max_calls=1
        )
        second.close(cancelled=True)
        session.close()
        await attaching

    asyncio.run(scenario())


def test_a_call_the_agent_never_attaches_times_out_and_is_released() -> None:
    async def scenario() -> None:
        registry = sessions.Registry(ping_timeout=0.1)
        session = sessions.Session(agent="edge-1", peer="p", connected_since=0.0, last_seen=0.0)
        await registry.add(session)
        with pytest.raises(sessions.SessionGone, match=r"did not open call 1 within 0\.05s"):
            await calls.open_call(
                registry, agent="edge-1", method="/m", attach_timeout=0.05, max_calls=4
            )
        assert session.calls_in_flight == 0
        assert session.attach(1) is None  # too late: nobody waits for it
        with pytest.raises(sessions.SessionGone, match="has no session"):
            await calls.open_call(
                registry, agent="edge-2", method="/m", attach_timeout=1, max_calls=4
            )

    asyncio.run(scenario())


def test_newest_session_wins_and_the_older_is_told_goodbye() -> None:
    async def scenario() -> None:
        registry = sessions.Registry(ping_timeout=0.05)
        older = sessions.Session(agent="edge-1", peer="a", connected_since=0.0, last_seen=0.0)
        newer = sessions.Session(agent="edge-1", peer="b", connected_since=1.0, last_seen=1.0)
        await registry.add(older)
        await registry.add(newer)
        assert registry.get("edge-1") is newer
        assert registry.by_id(older.session_id) is None
        signals = []
        while (signal := await older.next_signal()) is not None:
            signals.append(signal.WhichOneof("kind"))
        assert signals == ["ping", "goodbye"]
        # Removing the older one later does not remove the newer one.
        registry.remove(older)
        assert registry.get("edge-1") is newer

    asyncio.run(scenario())
