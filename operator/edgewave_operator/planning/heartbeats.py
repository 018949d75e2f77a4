"""When an EdgeAgent's status is worth an API write. Pure.

The node-heartbeat Lease pattern: probing an agent is cheap, writing its status is not
(10,000 agents would flood the API server). A status is written when something a reader
cares about changed (reachability, its gateway session, readiness, hardware, runtimes,
models and their states, claimed location); the volatile numbers (lastSeen, free disk,
latency, error rate) ride along with such writes and are otherwise refreshed once per
coarse period, and only for agents that answer. Agents that do not answer are probed less
and less often (`probe_delay`), so a dead site does not cost a probe per interval per agent.
"""

from __future__ import annotations

import datetime
from typing import Any

from edgewave_api import conditions as api_conditions
from edgewave_api import edgeagent

_VOLATILE_MODEL_FIELDS = frozenset({"p95_latency_ms", "error_rate", "activated_at"})


def significant(status: edgeagent.EdgeAgentStatus) -> dict[str, Any]:
    """The part of a status whose change must be written at once."""
    return {
        "gpu": status.gpu.model_dump() if status.gpu else None,
        "runtimes": sorted((r.name, r.version) for r in status.runtimes),
        "models": sorted(
            tuple(sorted(m.model_dump(exclude=set(_VOLATILE_MODEL_FIELDS)).items()))
            for m in status.models
        ),
        "reported_region": status.reported_region,
        "reported_jurisdiction": status.reported_jurisdiction,
        "agent_version": status.agent_version,
        "observed_generation": status.observed_generation,
        "conditions": sorted((c.type, c.status.value, c.reason) for c in status.conditions),
        "connection": status.connection.model_dump() if status.connection else None,
    }


def write_due(
    *,
    written: edgeagent.EdgeAgentStatus | None,
    current: edgeagent.EdgeAgentStatus,
    written_at: datetime.datetime | None,
    now: datetime.datetime,
    refresh: datetime.timedelta,
) -> bool:
    """Whether `current` should be written, given what was last written and when."""
    if written is None or significant(written) != significant(current):
        return True
    reachable = api_conditions.is_true(current.conditions, edgeagent.AgentConditionType.REACHABLE)
    if not reachable:
        return False
    last = written_at or written.last_seen
    return last is None or now - last >= refresh


def probe_delay(*, failures: int, interval: float, ceiling: float) -> float:
    """Seconds until the next Describe: the interval, doubled per consecutive failure."""
    if failures <= 0:
        return interval
    return min(interval * float(2 ** min(failures - 1, 32)), ceiling)
