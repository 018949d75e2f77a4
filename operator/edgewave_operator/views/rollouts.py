"""`edgewave status`: a ModelRollout's status with its waves, regions, gates and agents. Pure.

The rollout's own status carries the counts (per wave, per region, totals, exclusions,
gate measurements); what each agent holds comes from the EdgeAgents' status. `waves`
maps agent names to the wave the planner puts them in, so agents not updated yet show
where they will be updated.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from edgewave_api import conditions, edgeagent, modelrollout
from edgewave_operator.views import agents as agent_views
from edgewave_operator.views import ages


@dataclass(frozen=True, slots=True)
class AgentLine:
    """One agent as far as this rollout's model is concerned."""

    name: str
    region: str
    wave: str | None
    active: str | None
    """The version of the model it serves, if any."""
    held: tuple[edgeagent.HeldModel, ...]
    health: str


def name_of(rollout: modelrollout.ModelRollout) -> str:
    meta = rollout.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name or ""


def agent_lines(
    rollout: modelrollout.ModelRollout,
    agents: Iterable[edgeagent.EdgeAgent],
    *,
    waves: Mapping[str, str],
) -> list[AgentLine]:
    """Agents that hold the rollout's model or that the plan targets, by wave then name."""
    model = rollout.spec.model.name
    lines: list[AgentLine] = []
    for agent in agents:
        name = agent.metadata.name or ""
        held = tuple(m for m in (agent.status.models if agent.status else []) if m.name == model)
        if not held and name not in waves:
            continue
        active = next((m.version for m in held if m.state is edgeagent.HeldModelState.ACTIVE), None)
        lines.append(
            AgentLine(
                name=name,
                region=agent.spec.region,
                wave=waves.get(name),
                active=active,
                held=held,
                health=agent_views.health(agent),
            )
        )
    order = {wave.name: index for index, wave in enumerate(rollout.spec.strategy.waves)}
    return sorted(lines, key=lambda line: (order.get(line.wave or "", len(order)), line.name))


def gate_text(gate: modelrollout.GateMeasurement | None) -> str:
    if gate is None:
        return "-"
    parts = [f"{gate.samples} req"]
    if gate.p95_latency_ms is not None:
        parts.append(f"p95 {gate.p95_latency_ms:.1f} ms")
    if gate.error_rate is not None:
        parts.append(f"err {gate.error_rate:.3f}")
    verdict = {True: "passed", False: "failed", None: "measuring"}[gate.passed]
    return ", ".join(parts) + f" ({verdict})"


def header(rollout: modelrollout.ModelRollout) -> Text:
    status = rollout.status or modelrollout.ModelRolloutStatus()
    model = rollout.spec.model
    phase = status.phase.value if status.phase else "Pending"
    text = Text(f"{name_of(rollout)}: {model.name} {model.version}  ", style="bold")
    text.append(f"phase {phase}  ready {status.ready or '-'}")
    if status.current_wave:
        text.append(f"  wave {status.current_wave}")
    if status.message:
        text.append(f"\n{status.message}", style="dim")
    return text


def conditions_table(rollout: modelrollout.ModelRollout, *, now: datetime.datetime) -> Table:
    table = _table("Conditions", "TYPE", "STATUS", "REASON", "AGE", "MESSAGE")
    for condition in rollout.status.conditions if rollout.status else []:
        table.add_row(
            condition.type,
            condition.status.value,
            condition.reason,
            ages.age(condition.last_transition_time, now=now),
            condition.message,
        )
    return table


def waves_table(rollout: modelrollout.ModelRollout) -> Table:
    table = _table(
        "Waves", "WAVE", "PHASE", "TARGETS", "UPDATED", "HEALTHY", "FAILED", "OFFLINE", "GATE"
    )
    recorded = {w.name: w for w in (rollout.status.waves if rollout.status else [])}
    for spec in rollout.spec.strategy.waves:
        wave = recorded.get(spec.name)
        if wave is None:
            table.add_row(spec.name, "Pending", "-", "-", "-", "-", "-", "-")
            continue
        table.add_row(
            wave.name,
            wave.phase.value,
            str(wave.targets),
            str(wave.updated),
            str(wave.healthy),
            str(wave.failed),
            str(wave.offline),
            gate_text(wave.gate),
        )
    return table


def regions_table(rollout: modelrollout.ModelRollout) -> Table:
    table = _table(
        "Regions", "REGION", "TARGETS", "UPDATED", "HEALTHY", "FAILED", "OFFLINE", "EXCLUDED"
    )
    for region in rollout.status.regions if rollout.status else []:
        table.add_row(
            region.region,
            str(region.targets),
            str(region.updated),
            str(region.healthy),
            str(region.failed),
            str(region.offline),
            str(region.excluded),
        )
    return table


def agents_table(lines: Sequence[AgentLine]) -> Table:
    table = _table(
        "Agents", "AGENT", "REGION", "WAVE", "SERVING", "HELD", "P95", "ERRORS", "HEALTH"
    )
    for line in lines:
        active = next((m for m in line.held if m.state is edgeagent.HeldModelState.ACTIVE), None)
        table.add_row(
            line.name,
            line.region,
            line.wave or "-",
            line.active or "-",
            ", ".join(f"{m.version} ({m.state.value})" for m in line.held) or "-",
            f"{active.p95_latency_ms:.1f} ms"
            if active and active.p95_latency_ms is not None
            else "-",
            f"{active.error_rate:.3f}" if active and active.error_rate is not None else "-",
            line.health,
        )
    return table


def exclusions_table(rollout: modelrollout.ModelRollout) -> Table:
    table = _table("Excluded", "REASON", "COUNT", "AGENTS")
    for item in rollout.status.exclusions if rollout.status else []:
        table.add_row(item.reason, str(item.count), ", ".join(item.examples or []))
    return table


def engines_table(rollout: modelrollout.ModelRollout) -> Table:
    table = _table("Engines", "KEY", "BACKEND", "CC", "DIGEST", "SIZE", "BUILT")
    for engine in rollout.status.engines if rollout.status else []:
        built = engine.built_on.value
        if engine.build_seconds is not None:
            built += f" in {engine.build_seconds:.1f} s"
        table.add_row(
            engine.key,
            engine.backend.value,
            engine.compute_capability or "-",
            engine.digest.removeprefix("sha256:")[:12],
            f"{engine.size_bytes / 1024:.0f} KiB",
            built,
        )
    return table


def render(
    rollout: modelrollout.ModelRollout,
    lines: Sequence[AgentLine],
    *,
    now: datetime.datetime,
) -> Group:
    parts: list[RenderableType] = [header(rollout)]
    status = rollout.status
    # The API server serves `observedGeneration: 0` until the operator's first status write.
    if status is None or not status.observed_generation:
        parts.append(Text("no status yet: is the operator running? (`edgewave operator run`)"))
    else:
        parts += [conditions_table(rollout, now=now), waves_table(rollout)]
        parts.append(regions_table(rollout))
        if status.exclusions:
            parts.append(exclusions_table(rollout))
        if status.engines:
            parts.append(engines_table(rollout))
    if lines:
        parts.append(agents_table(lines))
    return Group(*parts)


def document(rollout: modelrollout.ModelRollout, lines: Sequence[AgentLine]) -> dict[str, Any]:
    """The rollout's status plus its agents, for `-o json|yaml`."""
    model = rollout.spec.model
    return {
        "rollout": name_of(rollout),
        "model": model.name,
        "version": model.version,
        "generation": rollout.metadata.generation,
        "ready": conditions.is_true(
            rollout.status.conditions if rollout.status else [],
            modelrollout.RolloutConditionType.READY,
        ),
        "status": rollout.status.model_dump(by_alias=True, exclude_none=True, mode="json")
        if rollout.status
        else None,
        "agents": [
            {
                "name": line.name,
                "region": line.region,
                "wave": line.wave,
                "serving": line.active,
                "held": [
                    m.model_dump(by_alias=True, exclude_none=True, mode="json") for m in line.held
                ],
                "health": line.health,
            }
            for line in lines
        ],
    }


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table
