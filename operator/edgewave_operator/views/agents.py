"""`edgewave agents`: one row per EdgeAgent, as a table or a document. Pure.

Health reads the conditions the operator writes: `Ready`, `NotReady` (reachable, not
ready), `Unreachable`, or `Unknown` (never heard from); a cordoned agent adds `Cordoned`,
as kubectl shows `Ready,SchedulingDisabled` for a cordoned node.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from edgewave_api import conditions, edgeagent, meta
from edgewave_operator.views import ages


@dataclass(frozen=True, slots=True)
class AgentRow:
    agent: edgeagent.EdgeAgent

    @property
    def name(self) -> str:
        return self.agent.metadata.name or ""

    @property
    def status(self) -> edgeagent.EdgeAgentStatus | None:
        return self.agent.status

    @property
    def gpu(self) -> edgeagent.GpuInfo | None:
        return self.status.gpu if self.status else None

    @property
    def models(self) -> list[edgeagent.HeldModel]:
        return list(self.status.models) if self.status else []

    @property
    def health(self) -> str:
        return health(self.agent)


def health(agent: edgeagent.EdgeAgent) -> str:
    """`Ready`, `NotReady`, `Unreachable` or `Unknown`, with `,Cordoned` when cordoned."""
    status = agent.status
    if status is None or not status.conditions:
        state = "Unknown"
    else:
        reachable = conditions.find_condition(
            status.conditions, edgeagent.AgentConditionType.REACHABLE
        )
        if reachable is not None and reachable.status is conditions.ConditionStatus.FALSE:
            state = "Unreachable"
        elif conditions.is_true(status.conditions, edgeagent.AgentConditionType.READY):
            state = "Ready"
        else:
            state = "NotReady"
    return f"{state},Cordoned" if agent.spec.cordoned else state


def rows(agents: Iterable[edgeagent.EdgeAgent], *, region: str | None = None) -> list[AgentRow]:
    """The agents (in `region`, when given), by region then name."""
    chosen = [a for a in agents if region is None or a.spec.region == region]
    return [
        AgentRow(agent=a)
        for a in sorted(chosen, key=lambda a: (a.spec.region, a.metadata.name or ""))
    ]


def held(model: edgeagent.HeldModel) -> str:
    """`classifier:1.0.0`, with the state when it is not serving: `classifier:0.9 (Standby)`."""
    text = f"{model.name}:{model.version}"
    if model.state is not edgeagent.HeldModelState.ACTIVE:
        text += f" ({model.state.value})"
    return text


def _gpu(row: AgentRow) -> str:
    return row.gpu.name if row.gpu else "none (CPU)"


def connected(row: AgentRow) -> str:
    """`yes (gw-eu)`, `yes (direct)`, `no (gw-eu)` or `-` (never heard of)."""
    connection = row.status.connection if row.status else None
    if connection is None:
        return "-"
    where = connection.gateway or "direct"
    return f"{'yes' if connection.connected else 'no'} ({where})"


def table(found: Sequence[AgentRow], *, now: datetime.datetime, wide: bool = False) -> Table:
    result = Table(box=None, pad_edge=False, header_style="bold")
    columns = ["NAME", "REGION", "GPU", "CC", "MODELS", "HEALTH", "CONNECTED", "LAST SEEN"]
    if wide:
        columns[2:2] = ["ZONE", "JURISDICTION"]
        columns += ["RUNTIMES", "ENDPOINT", "VERSION"]
    for column in columns:
        result.add_column(column, overflow="fold")
    for row in found:
        cells = [
            row.name,
            row.agent.spec.region,
            _gpu(row),
            row.gpu.compute_capability if row.gpu else "-",
            ", ".join(held(m) for m in row.models) or "-",
            row.health,
            connected(row),
            ages.age(row.status.last_seen if row.status else None, now=now),
        ]
        if wide:
            status = row.status
            cells[2:2] = [row.agent.spec.zone or "-", row.agent.spec.jurisdiction or "-"]
            cells += [
                ", ".join(f"{r.name} {r.version}" for r in status.runtimes) if status else "-",
                row.agent.spec.endpoint or "-",
                (status.agent_version if status else None) or "-",
            ]
        result.add_row(*cells)
    return result


def _model_document(model: edgeagent.HeldModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def document(found: Sequence[AgentRow]) -> dict[str, Any]:
    """`{"agents": [...]}` for `-o json|yaml`: one flat object per agent."""
    items: list[dict[str, Any]] = []
    for row in found:
        spec, status = row.agent.spec, row.status
        items.append(
            {
                "name": row.name,
                "region": spec.region,
                "zone": spec.zone,
                "jurisdiction": spec.jurisdiction,
                "endpoint": spec.endpoint,
                "cordoned": spec.cordoned,
                "gpu": row.gpu.model_dump(by_alias=True, exclude_none=True, mode="json")
                if row.gpu
                else None,
                "computeCapability": row.gpu.compute_capability if row.gpu else None,
                "runtimes": [
                    {"name": r.name, "version": r.version}
                    for r in (status.runtimes if status else [])
                ],
                "models": [_model_document(m) for m in row.models],
                "health": row.health,
                "connection": status.connection.model_dump(
                    by_alias=True, exclude_none=True, mode="json"
                )
                if status and status.connection
                else None,
                "lastSeen": meta.rfc3339(status.last_seen) if status and status.last_seen else None,
                "agentVersion": status.agent_version if status else None,
            }
        )
    return {"agents": items}
