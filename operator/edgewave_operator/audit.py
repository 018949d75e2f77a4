"""The residency audit trail: every residency decision, as an Event and a structured log line.

A regulated team must be able to show where a model was refused, kept out or removed,
and by which policy. Each decision (rejected at admission, excluded at planning, evicted
on drift) is therefore written twice: one JSON log line with fixed keys (`decision`,
`rollout`, `agent`, `region`, `policy`, `reason`, `message`) that log pipelines can index,
and a Kubernetes Event on the objects involved (what `kubectl describe` and
`kubectl get events` show). A rejected create has no object to attach an Event to, so it
goes on the ResidencyPolicy that refused it. Rejections and evictions also move the
operator's counters (`OperatorMetrics.residency_rejected` / `residency_evicted`).

Events are writes: callers record exclusions when the set of excluded agents changes, not
on every reconcile; `excluded` folds many agents into one Event per (policy, reason).
"""

from __future__ import annotations

import datetime
import enum
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

from kubernetes_asyncio import client

from edgewave_operator import metrics as metrics_
from edgewave_operator.kube import events

log = logging.getLogger("edgewave.audit.residency")

PREFIX = "residency-audit"
"""Every audit line starts with this word, then one JSON object."""
EXAMPLES = 5
"""Agents named in one folded exclusion Event."""


class Decision(enum.StrEnum):
    REJECTED = "Rejected"
    EXCLUDED = "Excluded"
    EVICTED = "Evicted"


EVENT_REASONS: Mapping[Decision, str] = {
    Decision.REJECTED: "ResidencyRejected",
    Decision.EXCLUDED: "ResidencyExcluded",
    Decision.EVICTED: "ResidencyEvicted",
}
EVENT_TYPES: Mapping[Decision, str] = {
    Decision.REJECTED: "Warning",
    Decision.EXCLUDED: "Normal",
    Decision.EVICTED: "Warning",
}


@dataclass(frozen=True, slots=True)
class Entry:
    """One residency decision about one rollout (and, below admission, one agent).

    `rollout` is `namespace/name` (None for a refused ResidencyPolicy); `policy` is a
    ResidencyPolicy's name, `spec.residency`, or None when no rule is at stake (e.g. an
    agent that misreports its region);
    `reason` is a CamelCase machine reason such as `RegionNotAllowed`.
    """

    decision: Decision
    rollout: str | None
    message: str
    region: str | None = None
    policy: str | None = None
    agent: str | None = None
    reason: str = ""


def policy_name(source: str) -> str | None:
    """A rule's source as the audit names it: `ResidencyPolicy/eu-only` -> `eu-only`."""
    for prefix in ("ResidencyPolicy/", "ResidencyPolicy "):
        if source.startswith(prefix):
            return source.removeprefix(prefix).strip('"')
    return source or None


def line(entry: Entry) -> str:
    """The structured log line for `entry` (pure): `residency-audit {"decision": ...}`."""
    return f"{PREFIX} {json.dumps(asdict(entry), sort_keys=True)}"


def write_log(entry: Entry) -> None:
    level = logging.INFO if entry.decision is Decision.EXCLUDED else logging.WARNING
    log.log(level, line(entry), extra={"residency": asdict(entry)})


def count(entry: Entry, metrics: metrics_.OperatorMetrics | None) -> None:
    """The metrics hook: rejections and evictions are counted by region."""
    if metrics is None:
        return
    region = entry.region or "unknown"
    if entry.decision is Decision.REJECTED:
        metrics.residency_rejected(region=region)
    elif entry.decision is Decision.EVICTED:
        metrics.residency_evicted(region=region)


async def record(
    api: client.ApiClient | None,
    entry: Entry,
    *,
    about: Iterable[events.ObjectRef],
    now: datetime.datetime,
    metrics: metrics_.OperatorMetrics | None = None,
) -> None:
    """Log, count, and post one Event per object in `about` (none when `api` is None)."""
    write_log(entry)
    count(entry, metrics)
    if api is None:
        return
    for ref in about:
        await events.post(
            api,
            about=ref,
            type_=EVENT_TYPES[entry.decision],
            reason=EVENT_REASONS[entry.decision],
            message=entry.message,
            now=now,
        )


@dataclass(frozen=True, slots=True)
class Exclusion:
    """An agent planning keeps out of a rollout for residency."""

    agent: str
    region: str
    reason: str
    message: str
    policy: str | None = None


async def excluded(
    api: client.ApiClient | None,
    *,
    rollout: events.ObjectRef,
    exclusions: Sequence[Exclusion],
    now: datetime.datetime,
) -> None:
    """Audit agents excluded from `rollout`: a log line each, one Event per (policy, reason)."""
    name = _qualified(rollout)
    groups: dict[tuple[str | None, str], list[Exclusion]] = defaultdict(list)
    for exclusion in exclusions:
        write_log(
            Entry(
                decision=Decision.EXCLUDED,
                rollout=name,
                agent=exclusion.agent,
                region=exclusion.region,
                policy=exclusion.policy,
                reason=exclusion.reason,
                message=exclusion.message,
            )
        )
        groups[(exclusion.policy, exclusion.reason)].append(exclusion)
    if api is None:
        return
    for (policy, reason), members in sorted(groups.items(), key=lambda g: (g[0][0] or "", g[0][1])):
        await events.post(
            api,
            about=rollout,
            type_=EVENT_TYPES[Decision.EXCLUDED],
            reason=EVENT_REASONS[Decision.EXCLUDED],
            message=exclusion_message(members, policy=policy, reason=reason),
            now=now,
        )


def exclusion_message(members: Sequence[Exclusion], *, policy: str | None, reason: str) -> str:
    """One Event message for agents excluded for the same reason by the same policy (pure)."""
    named = sorted(members, key=lambda m: m.agent)
    shown = ", ".join(f"{m.agent} ({m.region})" for m in named[:EXAMPLES])
    more = f" and {len(named) - EXAMPLES} more" if len(named) > EXAMPLES else ""
    by = f" by {policy}" if policy else ""
    return f"{len(named)} agent(s) excluded{by} ({reason}): {shown}{more}; {named[0].message}"


async def evicted(
    api: client.ApiClient | None,
    *,
    rollout: events.ObjectRef,
    agent: events.ObjectRef,
    region: str,
    policy: str | None,
    reason: str,
    message: str,
    now: datetime.datetime,
    metrics: metrics_.OperatorMetrics | None = None,
) -> None:
    """Audit the removal of a rollout's model from an agent: Events on both objects."""
    await record(
        api,
        Entry(
            decision=Decision.EVICTED,
            rollout=_qualified(rollout),
            agent=agent.name,
            region=region,
            policy=policy,
            reason=reason,
            message=message,
        ),
        about=(agent, rollout),
        now=now,
        metrics=metrics,
    )


def _qualified(ref: events.ObjectRef) -> str:
    return f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name
