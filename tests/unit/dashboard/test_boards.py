"""The dashboard's documents: the same view model as `edgewave status`, laid out for a page."""

from __future__ import annotations

import datetime

from edgewave_operator.views import boards, dryruns, rollouts
from tests.unit.dashboard import fixtures

NOW = fixtures.T0


def _detail(**kwargs: object) -> dict[str, object]:
    rollout = fixtures.rollout(status=fixtures.STATUS)
    return boards.detail(
        rollout, agents=fixtures.fleet(), policies=[], events=[], now=NOW, **kwargs
    )


def test_the_detail_is_edgewave_status_document_plus_the_layout() -> None:
    rollout = fixtures.rollout(status=fixtures.STATUS)
    agents = fixtures.fleet()
    lines = rollouts.agent_lines(
        rollout, agents, waves=dryruns.waves_of(rollout=rollout, agents=agents, policies=[])
    )
    status_document = rollouts.document(rollout, lines)
    detail = boards.detail(rollout, agents=agents, policies=[], events=[], now=NOW)
    for key, value in status_document.items():
        assert detail[key] == value, key
    assert [a["name"] for a in detail["agents"]] == ["west-1", "west-2", "central-1"]


def test_waves_follow_the_spec_with_recorded_progress_and_gate_numbers() -> None:
    waves = _detail()["waves"]
    assert isinstance(waves, list)
    assert [(w["name"], w["phase"], w["current"]) for w in waves] == [
        ("eu-west", "Succeeded", False),
        ("eu-central", "Progressing", True),
        ("us-east", "Pending", False),
    ]
    assert waves[0]["gate"] == {
        "samples": 31,
        "p95LatencyMs": 2.5,
        "errorRate": 0.0,
        "passed": True,
        "text": "31 req, p95 2.5 ms, err 0.000 (passed)",
    }
    assert waves[2]["gate"] is None
    assert waves[2]["regions"] == ["us-east"]


def test_the_grid_puts_each_agent_in_its_wave_and_region() -> None:
    grid = _detail()["grid"]
    assert grid == {
        "regions": ["eu-west", "eu-central", "us-east"],
        "rows": [
            {"wave": "eu-west", "cells": [["west-1", "west-2"], [], []]},
            {"wave": "eu-central", "cells": [[], ["central-1"], []]},
            {"wave": "us-east", "cells": [[], [], []]},
        ],
    }


def test_agents_holding_the_model_outside_every_wave_get_their_own_row() -> None:
    rollout = fixtures.rollout(status=fixtures.STATUS)
    stray = fixtures.agent("asia-1", "ap-south", fixtures.held("0.9.0", "Active"))
    detail = boards.detail(rollout, agents=[stray], policies=[], events=[], now=NOW)
    assert detail["grid"]["regions"] == ["eu-west", "eu-central", "us-east", "ap-south"]
    assert detail["grid"]["rows"][-1] == {
        "wave": boards.NO_WAVE,
        "cells": [[], [], [], ["asia-1"]],
    }


def test_no_status_yet_is_pending_with_empty_counts() -> None:
    detail = boards.detail(fixtures.rollout(), agents=[], policies=[], events=[], now=NOW)
    assert detail["phase"] == "Pending"
    assert detail["readyAgents"] == "-"
    assert detail["status"] is None
    assert {w["phase"] for w in detail["waves"]} == {"Pending"}
    assert detail["conditions"] == []


def test_conditions_carry_their_age() -> None:
    assert _detail()["conditions"] == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "WaveInProgress",
            "message": "wave eu-central",
            "age": "2m",
        }
    ]


def _event(name: str, minutes: int, *, namespace: str = "shop", kind: str = "ModelRollout"):
    return boards.EventLine(
        kind=kind,
        namespace=namespace,
        name=name,
        type="Normal",
        reason=f"R{minutes}",
        message=f"{minutes} minutes ago",
        time=NOW - datetime.timedelta(minutes=minutes),
    )


def test_events_are_the_rollouts_own_newest_first_and_bounded() -> None:
    rollout = fixtures.rollout()
    events = [
        _event("classifier-global", 5),
        _event("classifier-global", 1),
        _event("classifier-global", 3, namespace="other"),
        _event("classifier-global", 2, kind="EdgeAgent"),
        _event("someone-else", 0),
    ]
    found = boards.events_of(rollout, events, now=NOW)
    assert [(e["reason"], e["age"]) for e in found] == [("R1", "60s"), ("R5", "5m")]
    many = [_event("classifier-global", m) for m in range(boards.MAX_EVENTS + 5)]
    assert len(boards.events_of(rollout, many, now=NOW)) == boards.MAX_EVENTS


def test_actions_offered_follow_the_rollout_state() -> None:
    running = boards.detail(
        fixtures.rollout(status=fixtures.STATUS), agents=[], policies=[], events=[], now=NOW
    )
    paused = boards.detail(
        fixtures.rollout(paused=True, status=fixtures.STATUS),
        agents=[],
        policies=[],
        events=[],
        now=NOW,
    )
    done = boards.detail(
        fixtures.rollout(status={**fixtures.STATUS, "phase": "Succeeded"}),
        agents=[],
        policies=[],
        events=[],
        now=NOW,
    )
    assert running["actions"] == [{"name": "pause", "label": "Pause"}]
    assert paused["actions"] == [{"name": "resume", "label": "Resume"}]
    assert paused["paused"] is True
    assert done["actions"] == []


def test_the_board_lists_every_rollout_and_details_the_selected_one() -> None:
    first = fixtures.rollout(status=fixtures.STATUS)
    other = fixtures.rollout().model_copy(
        update={"metadata": first.metadata.model_copy(update={"namespace": "a-team"})}
    )
    board = boards.board(
        found=[first, other],
        selected="shop/classifier-global",
        agents=[],
        policies=[],
        events=[],
        now=NOW,
        problem="edgeagents: cannot reach the API server",
    )
    assert [r["rollout"] for r in board["rollouts"]] == [
        "a-team/classifier-global",
        "shop/classifier-global",
    ]
    assert board["rollouts"][1]["readyAgents"] == "2/3"
    assert board["rollouts"][1]["conditions"] == [
        {"type": "Ready", "status": "False", "reason": "WaveInProgress"}
    ]
    assert board["rollouts"][0]["conditions"] == []
    assert board["detail"]["rollout"] == "shop/classifier-global"
    assert board["problem"] == "edgeagents: cannot reach the API server"
    assert board["at"] == "2026-01-02T03:04:05Z"
    unknown = boards.board(
        found=[first], selected="shop/nope", agents=[], policies=[], events=[], now=NOW
    )
    assert unknown["detail"] is None


def test_a_missing_residency_policy_targets_nothing_but_the_status_still_shows() -> None:
    rollout = fixtures.rollout(status=fixtures.STATUS)
    body = rollout.model_dump(by_alias=True, exclude_none=True, mode="json")
    body["spec"]["residency"] = {"policyRef": {"name": "gone"}}
    with_policy = type(rollout).model_validate(body)
    detail = boards.detail(with_policy, agents=fixtures.fleet(), policies=[], events=[], now=NOW)
    assert detail["phase"] == "Progressing"
    assert all(a["wave"] is None for a in detail["agents"])
