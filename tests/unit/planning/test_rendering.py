"""Status rendering: conditions kstatus and `kubectl wait` read right, counts, exclusions."""

from __future__ import annotations

import datetime

import pytest

from edgewave_api import conditions as api_conditions
from edgewave_operator.planning import (
    conditions,
    progress,
    rendering,
    residency,
    stepping,
    summaries,
    targeting,
    views,
)

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
Phase = progress.Phase
ACTIVE = views.ModelState.ACTIVE
COMPILED = conditions.Condition(
    type="Compiled", status=conditions.Status.TRUE, reason="EnginesReady", message="1 engine"
)
INTENT = stepping.Intent(model="m", version="2", revision="2")
ENGINE = views.EngineRef(digest="d2", backend="ONNXRuntime")


def agent(
    name: str, region: str, *, version: str | None, reachable: bool = True
) -> views.AgentView:
    models = (
        (views.HeldModel(name="m", version=version, digest="d2", state=ACTIVE),) if version else ()
    )
    return views.AgentView(name=name, region=region, models=models, reachable=reachable)


AGENTS = (
    agent("a", "eu-west", version="2"),
    agent("b", "eu-west", version="2", reachable=False),
    agent("c", "us-east", version="1"),
)
EXCLUDED = targeting.Excluded(
    agent="z", region="us-west", reason="RegionNotAllowed", message="no", source="ResidencyPolicy/p"
)


def render(current: progress.Progress, evictions: tuple[residency.Eviction, ...] = ()) -> object:
    wave = targeting.Wave(name="w", index=0, agents=AGENTS, max_unavailable=1, max_failed=0)
    found = targeting.Targeting(targets=AGENTS, excluded=(EXCLUDED,))
    engines = {a.name: ENGINE for a in AGENTS}
    summary = summaries.summarize(
        intent=INTENT, waves=[wave], targets=found, engines=engines, current=current, now=T0
    )
    return rendering.rollout_status(
        generation=4,
        current=current,
        summary=summary,
        targets=found,
        evictions=evictions,
        compiled=COMPILED,
        engines=(),
        previous=None,
        now=T0,
    )


def statuses(status: object) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status.value, c.reason) for c in status.conditions}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("phase", "ready", "progressing", "degraded", "reconciling", "stalled"),
    [
        (Phase.PROGRESSING, "False", "True", "False", "True", "False"),
        (Phase.PAUSED, "False", "False", "False", "False", "False"),
        (Phase.SUCCEEDED, "True", "False", "False", "False", "False"),
        (Phase.ROLLING_BACK, "False", "True", "True", "True", "False"),
        (Phase.ROLLED_BACK, "False", "False", "True", "False", "True"),
        (Phase.FAILED, "False", "False", "True", "False", "True"),
    ],
)
def test_conditions_by_phase(
    *,
    phase: progress.Phase,
    ready: str,
    progressing: str,
    degraded: str,
    reconciling: str,
    stalled: str,
) -> None:
    failure = progress.Failure(
        reason="LatencyTooHigh", message="wave w: p95 90 ms", at=T0, numbers={"p95LatencyMs": 90}
    )
    current = progress.Progress(
        revision="2", version="2", phase=phase, failure=failure, waves=(progress.WaveProgress("w"),)
    )
    found = statuses(render(current))
    assert found["Ready"][0] == ready
    assert found["Progressing"][0] == progressing
    assert found["Degraded"][0] == degraded
    assert found["Reconciling"][0] == reconciling
    assert found["Stalled"][0] == stalled
    assert found["Compiled"] == ("True", "EnginesReady")
    if degraded == "True":
        assert found["Degraded"][1] == "LatencyTooHigh"


def test_degraded_message_carries_the_numbers_and_generation() -> None:
    failure = progress.Failure(
        reason="ErrorRateTooHigh", message="wave w: error rate 0.2", at=T0,
        numbers={"errorRate": 0.2, "requests": 50},
    )  # fmt: skip
    status = render(
        progress.Progress(revision="2", version="2", phase=Phase.ROLLED_BACK, failure=failure)
    )
    degraded = api_conditions.find_condition(status.conditions, "Degraded")  # type: ignore[attr-defined]
    assert degraded is not None
    assert "errorRate=0.2" in degraded.message and "requests=50" in degraded.message
    assert degraded.observed_generation == 4
    assert status.observed_generation == 4  # type: ignore[attr-defined]


def test_counts_and_exclusions() -> None:
    status = render(progress.Progress(revision="2", version="2", phase=Phase.PROGRESSING))
    assert status.ready == "1/3"  # type: ignore[attr-defined]
    totals = status.totals  # type: ignore[attr-defined]
    assert (totals.targets, totals.updated, totals.healthy, totals.excluded) == (3, 2, 1, 1)
    regions = {r.region: (r.targets, r.updated, r.excluded) for r in status.regions}  # type: ignore[attr-defined]
    assert regions == {"eu-west": (2, 2, 0), "us-east": (1, 0, 0), "us-west": (0, 0, 1)}
    [exclusion] = status.exclusions  # type: ignore[attr-defined]
    assert (exclusion.reason, exclusion.count, exclusion.examples) == ("RegionNotAllowed", 1, ["z"])


def test_pending_evictions_make_residency_non_compliant() -> None:
    eviction = residency.Eviction(
        agent="a", region="us-east", model="m", versions=("2",),
        violation=residency.Violation(
            reason=residency.Reason.REGION_NOT_ALLOWED, message="region us-east not allowed",
            source="ResidencyPolicy/p",
        ),
    )  # fmt: skip
    status = render(
        progress.Progress(revision="2", version="2", phase=Phase.SUCCEEDED), (eviction,)
    )
    assert statuses(status)["ResidencyCompliant"] == ("False", "RegionNotAllowed")
    compliant = render(progress.Progress(revision="2", version="2", phase=Phase.SUCCEEDED))
    assert statuses(compliant)["ResidencyCompliant"] == ("True", "Compliant")


def test_transition_time_moves_only_on_a_flip() -> None:
    current = progress.Progress(revision="2", version="2", phase=Phase.PROGRESSING)
    first = render(current)
    later = T0 + datetime.timedelta(minutes=3)
    wave = targeting.Wave(name="w", index=0, agents=AGENTS, max_unavailable=1, max_failed=0)
    found = targeting.Targeting(targets=AGENTS, excluded=())
    summary = summaries.summarize(
        intent=INTENT, waves=[wave], targets=found, engines={}, current=current, now=T0
    )
    again = rendering.rollout_status(
        generation=5, current=current, summary=summary, targets=found, evictions=(),
        compiled=COMPILED, engines=(), previous=first, now=later,  # type: ignore[arg-type]
    )  # fmt: skip
    ready = api_conditions.find_condition(again.conditions, "Ready")
    assert ready is not None and ready.last_transition_time == T0
    done = rendering.rollout_status(
        generation=5, current=progress.Progress(revision="2", version="2", phase=Phase.SUCCEEDED),
        summary=summary, targets=found, evictions=(), compiled=COMPILED, engines=(),
        previous=again, now=later,
    )  # fmt: skip
    flipped = api_conditions.find_condition(done.conditions, "Ready")
    assert flipped is not None and flipped.last_transition_time == later
