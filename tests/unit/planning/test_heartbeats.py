"""EdgeAgent status writes happen on change or on the coarse refresh period only."""

from __future__ import annotations

import datetime

import pytest

from edgewave_api import conditions as api_conditions
from edgewave_api import edgeagent
from edgewave_operator.planning import heartbeats

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
MIN = datetime.timedelta(minutes=1)
REFRESH = 5 * MIN
DIGEST = "sha256:" + "a" * 64


def status(
    *,
    reachable: bool = True,
    state: edgeagent.HeldModelState = edgeagent.HeldModelState.ACTIVE,
    p95: float = 3.0,
    free: int = 1000,
    seen: datetime.datetime = T0,
    region: str = "eu-west",
) -> edgeagent.EdgeAgentStatus:
    conditions = api_conditions.set_condition(
        [],
        type="Reachable",
        status=reachable,
        reason="DescribeSucceeded" if reachable else "DescribeFailed",
        message="" if reachable else "connection refused",
        observed_generation=1,
        now=T0,
    )
    return edgeagent.EdgeAgentStatus(
        models=[
            edgeagent.HeldModel(
                name="m",
                version="v1",
                digest=DIGEST,
                backend="ONNXRuntime",
                state=state,
                p95_latency_ms=p95,
            )
        ],
        free_disk_bytes=free,
        last_seen=seen,
        reported_region=region,
        conditions=conditions,
    )


@pytest.mark.parametrize(
    ("current", "now", "due"),
    [
        (status(), T0 + MIN, False),  # nothing changed, within the period
        (status(p95=80.0, free=5, seen=T0 + MIN), T0 + MIN, False),  # volatile only
        (status(seen=T0 + 6 * MIN), T0 + 6 * MIN, True),  # coarse refresh of lastSeen
        (status(state=edgeagent.HeldModelState.STANDBY), T0 + MIN, True),
        (status(reachable=False), T0 + MIN, True),  # reachability flipped
        (status(region="us-east"), T0 + MIN, True),  # claimed location changed
    ],
)
def test_write_due(
    *, current: edgeagent.EdgeAgentStatus, now: datetime.datetime, due: bool
) -> None:
    assert (
        heartbeats.write_due(
            written=status(), current=current, written_at=T0, now=now, refresh=REFRESH
        )
        is due
    )


def test_unreachable_agent_is_not_refreshed() -> None:
    down = status(reachable=False)
    assert not heartbeats.write_due(
        written=down, current=down, written_at=T0, now=T0 + 60 * MIN, refresh=REFRESH
    )


def test_first_status_is_always_written() -> None:
    assert heartbeats.write_due(
        written=None, current=status(), written_at=None, now=T0, refresh=REFRESH
    )


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(0, 10.0), (1, 10.0), (2, 20.0), (3, 40.0), (4, 80.0), (5, 120.0), (99, 120.0)],
)
def test_probe_backoff(failures: int, delay: float) -> None:
    assert heartbeats.probe_delay(failures=failures, interval=10.0, ceiling=120.0) == delay
