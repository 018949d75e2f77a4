"""Offline agents: how long a wave waits for one, and when it counts as failed. Pure.

At the edge an agent that is not connected is normal (a vehicle in a tunnel, a store shut
for the night, a cell site on a flaky link), not an error. The rule, in one place:

- A wave that reaches an agent that is not connected does not push to it and does not give
  it one of its `maxUnavailable` slots: that limit is about agents being updated at once,
  an offline agent is not being updated, and a slot held for it would stall the wave on a
  silent agent. The wave counts it as offline (the status's `offline` counts) and waits.
- Its clock starts at the later of when the wave reached it (the wave's `startedAt`, which
  the rollout's status keeps across restarts) and when the operator lost it
  (`AgentView.unreachable_since`): an agent that drops off in the middle of a wave gets the
  whole timeout to come back. When the operator does not know since when (a restarted
  operator, say), the wave's start counts, never anything earlier.
- Once `unreachableTimeoutSeconds` have passed it counts against `maxFailed`, with a
  reason that says it was offline (`Reason.OFFLINE`). The wave completes once every agent
  is updated, failed, or offline past the timeout, so the rollout never hangs on silent
  agents; more failures than `maxFailed` fail the wave like failed activations do (and
  roll back under `autoRollback`). A percentage `maxFailed` rounds *down*
  (`planning.quantities`, as Kubernetes rounds `maxUnavailable`): "10%" of a wave of 5 is 0,
  so one agent offline past the timeout fails it; write a count (`maxFailed: 1`) to let a
  small wave pass without one agent.
- Offline agents never make a health gate fail by themselves: gates observe the wave's
  reachable, updated agents only (`stepping`).
- Nothing here is remembered: an agent past the timeout that reconnects stops counting and
  is brought to the version (`converging`). The version it is owed is the rollout's
  `currentVersion` (persisted) for the wave it belongs to (recomputed from the fleet every
  turn), so a restarted operator owes it the same version without a per-agent record.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from edgewave_operator.planning import views

DEFAULT_TIMEOUT = datetime.timedelta(seconds=600)


class Reason(StrEnum):
    OFFLINE = "AgentsOffline"
    """Agents stayed offline past the timeout (an event, and a wave's failure reason)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """`spec.strategy.unreachableTimeoutSeconds`, applied to one agent of a started wave."""

    timeout: datetime.timedelta = DEFAULT_TIMEOUT

    def since(self, agent: views.AgentView, *, reached: datetime.datetime) -> datetime.datetime:
        """When the wait for `agent` began: the later of `reached` and when it was lost."""
        lost = agent.unreachable_since
        if lost is None:
            return reached
        return max(views.utc(reached), views.utc(lost))

    def due(self, agent: views.AgentView, *, reached: datetime.datetime) -> datetime.datetime:
        """When `agent`, if still offline, counts against `maxFailed`."""
        return self.since(agent, reached=reached) + self.timeout

    def overdue(
        self, agent: views.AgentView, *, reached: datetime.datetime, now: datetime.datetime
    ) -> bool:
        """`agent` is offline and has been for the whole timeout."""
        return not agent.reachable and views.utc(now) >= self.due(agent, reached=reached)

    @property
    def seconds(self) -> float:
        return self.timeout.total_seconds()


@dataclass(frozen=True, slots=True)
class Waiting:
    """A wave's agents still owed the version that are offline, split by the timeout."""

    overdue: tuple[str, ...] = ()
    """Offline past the timeout: counted against `maxFailed`."""
    offline: tuple[str, ...] = ()
    """Offline within the timeout: the wave waits for them."""
    wake_at: datetime.datetime | None = None
    """When the first of `offline` times out."""


def waiting(
    rule: Rule,
    owed: Iterable[views.AgentView],
    *,
    reached: datetime.datetime,
    now: datetime.datetime,
) -> Waiting:
    """Which of `owed` (a started wave's agents not updated, not failed) are offline."""
    overdue: list[str] = []
    offline: list[str] = []
    due: list[datetime.datetime] = []
    for agent in sorted(owed, key=lambda a: a.name):
        if agent.reachable:
            continue
        if rule.overdue(agent, reached=reached, now=now):
            overdue.append(agent.name)
        else:
            offline.append(agent.name)
            due.append(rule.due(agent, reached=reached))
    return Waiting(overdue=tuple(overdue), offline=tuple(offline), wake_at=min(due, default=None))


def timed_out_message(rule: Rule, *, wave: str, agents: Iterable[str]) -> str:
    """The event that says agents of `wave` now count as failed for being offline."""
    names = sorted(agents)
    return (
        f"wave {wave}: agents {', '.join(names)} offline for {rule.seconds:g} s "
        "(unreachableTimeoutSeconds); counted against maxFailed, they receive the version "
        "when they reconnect"
    )


def failure_message(
    rule: Rule,
    *,
    version: str,
    total: int,
    max_failed: int,
    failed: Iterable[str],
    offline: Iterable[str],
) -> str:
    """Why a wave failed: its failed activations and its agents offline past the timeout."""
    failed_names, offline_names = sorted(failed), sorted(offline)
    count = len(failed_names) + len(offline_names)
    if not offline_names:
        return (
            f"{count} of {total} agents failed to activate {version} "
            f"(maxFailed {max_failed}): {', '.join(failed_names)}"
        )
    parts = []
    if failed_names:
        parts.append(f"failed to activate {version}: {', '.join(failed_names)}")
    if offline_names:
        parts.append(
            f"offline past unreachableTimeoutSeconds ({rule.seconds:g} s): "
            + ", ".join(offline_names)
        )
    return f"{count} of {total} agents failed (maxFailed {max_failed}); " + "; ".join(parts)
