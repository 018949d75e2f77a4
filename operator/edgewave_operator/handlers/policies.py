"""ResidencyPolicy status: what each policy does to the fleet, written by the leader.

`summarize` is the pure part (policy, rollouts, agent views, previous status -> status);
`PolicyStatuses` keeps the leader's view of policies and rollouts (fed by the kopf event
handlers in `registration`), recomputes every policy's status level-based when something
changed or at most every `reconcile_period_seconds`, and writes a policy's status only
when it differs from what is stored. `evictions` counts violations that ended because the
model left the agent; it continues from the stored value after a failover.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client
from pydantic import ValidationError

from edgewave_api import conditions, modelrollout, residencypolicy
from edgewave_api.errors import EdgewaveError
from edgewave_operator.agents.inventory import Inventory
from edgewave_operator.kube import patching
from edgewave_operator.planning import parsing, residency, views

log = logging.getLogger(__name__)
PLURAL = "residencypolicies"
Pair = tuple[str, str]
"""(agent, model): a model held by an agent."""


@dataclass(frozen=True, slots=True)
class Summary:
    status: residencypolicy.ResidencyPolicyStatus
    pending: frozenset[Pair]
    """Violations now (models held where the policy forbids them)."""


def summarize(
    policy: residencypolicy.ResidencyPolicy,
    *,
    rollouts: Iterable[modelrollout.ModelRollout],
    fleet: Iterable[views.AgentView],
    pending_before: frozenset[Pair],
    now: datetime.datetime,
) -> Summary:
    """The policy's status from the rollouts it governs and the agents' state. Pure."""
    rule = residency.ResidencyRules(rules=(parsing.policy_rule(policy),))
    agents = list(fleet)
    matched = [r for r in rollouts if parsing.policy_applies(policy, r)]
    excluded: set[str] = set()
    pending: set[Pair] = set()
    for rollout in matched:
        targets = parsing.target_spec(rollout)
        model = rollout.spec.model.name
        for agent in agents:
            # The policy's own rule, or a location nothing can be proven about (which
            # no rollout under any policy may use).
            if rule.violation(agent) is None:
                continue
            if targets.selects(agent):
                excluded.add(agent.name)
            if agent.versions_of(model):
                pending.add((agent.name, model))
    by_name = {agent.name: agent for agent in agents}
    # An eviction ended: the agent still may not hold the model, and no longer does.
    ended = {
        (agent, model)
        for agent, model in pending_before - pending
        if agent in by_name
        and not by_name[agent].versions_of(model)
        and rule.violation(by_name[agent]) is not None
    }
    previous = policy.status or residencypolicy.ResidencyPolicyStatus()
    generation = policy.metadata.generation
    if pending:
        ready, reason = False, "EvictionPending"
        message = f"{len(pending)} models held where this policy forbids them; evicting"
    else:
        ready, reason = True, "Compliant"
        message = f"{len(matched)} rollouts governed; no model held where it is forbidden"
    status = residencypolicy.ResidencyPolicyStatus(
        observed_generation=generation,
        matched_rollouts=len(matched),
        violations=len(pending),
        excluded_agents=len(excluded),
        evictions=previous.evictions + len(ended),
        conditions=conditions.set_condition(
            previous.conditions,
            type="Ready",
            status=ready,
            reason=reason,
            message=message,
            observed_generation=generation,
            now=now,
        ),
    )
    return Summary(status=status, pending=frozenset(pending))


def _dump(status: residencypolicy.ResidencyPolicyStatus | None) -> dict[str, Any]:
    if status is None:
        return {}
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


class PolicyStatuses:
    """The leader's writer of ResidencyPolicy status (one loop for all policies)."""

    def __init__(
        self,
        *,
        api: client.ApiClient,
        inventory: Inventory,
        period: float,
        min_interval: float,
        clock: Callable[[], datetime.datetime],
    ) -> None:
        self._api = api
        self._inventory = inventory
        self._period = period
        self._min_interval = min_interval
        self._clock = clock
        self.policies: dict[str, residencypolicy.ResidencyPolicy] = {}
        self.rollouts: dict[str, modelrollout.ModelRollout] = {}
        self._pending: dict[str, frozenset[Pair]] = {}
        self._changed = asyncio.Event()

    def changed(self) -> None:
        self._changed.set()

    def note_evictions(self, *, policies: Iterable[str], pairs: Iterable[Pair]) -> None:
        """Evictions a rollout is about to make under `policies` (counted once they end)."""
        noted = frozenset(pairs)
        if not noted:
            return
        for name in policies:
            self._pending[name] = self._pending.get(name, frozenset()) | noted

    def policy_event(self, *, kind: str, name: str, body: Mapping[str, Any]) -> None:
        if kind == "DELETED":
            self.policies.pop(name, None)
            self._pending.pop(name, None)
        else:
            try:
                self.policies[name] = residencypolicy.ResidencyPolicy.model_validate(dict(body))
            except ValidationError:
                self.policies.pop(name, None)
        self.changed()

    def rollout_event(self, *, kind: str, uid: str, body: Mapping[str, Any]) -> None:
        if kind == "DELETED":
            self.rollouts.pop(uid, None)
        else:
            try:
                self.rollouts[uid] = modelrollout.ModelRollout.model_validate(dict(body))
            except ValidationError:
                self.rollouts.pop(uid, None)
        self.changed()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=self._period)
            self._changed.clear()
            await self.write_all()
            await asyncio.sleep(self._min_interval)  # coalesce bursts of changes

    async def write_all(self) -> None:
        fleet = self._inventory.views(list(self._inventory.specs.values()))
        for name, policy in list(self.policies.items()):
            before = self._pending.get(name, frozenset())
            summary = summarize(
                policy,
                rollouts=list(self.rollouts.values()),
                fleet=fleet,
                pending_before=before,
                now=self._clock(),
            )
            self._pending[name] = summary.pending
            old, new = _dump(policy.status), _dump(summary.status)
            if _comparable(old) == _comparable(new):
                continue
            try:
                written = await patching.patch_status(
                    self._api,
                    plural=PLURAL,
                    name=name,
                    namespace=None,
                    status=patching.merge_patch(old, new),
                )
            except EdgewaveError as error:
                log.warning("status of ResidencyPolicy %s not written: %s", name, error)
                # Count the ended evictions at the next write.
                self._pending[name] = self._pending.get(name, frozenset()) | before
                self._changed.set()
                continue
            with contextlib.suppress(ValidationError):
                self.policies[name] = residencypolicy.ResidencyPolicy.model_validate(written)


def _comparable(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status without condition timestamps (they move only with a flip anyway)."""
    plain = dict(status)
    plain["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"}
        for c in plain.get("conditions", [])
    ]
    return plain
