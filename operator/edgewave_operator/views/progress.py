"""The demo's live view: each rollout's waves, and what every agent serves, by region. Pure.

Redrawn from the API server's objects (ModelRollout status, EdgeAgent status) as they
change, so it shows what `kubectl` would, side by side. An agent a rollout excluded shows
the reason instead of a version (the rollout's status names up to five per reason).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from edgewave_api import edgeagent, modelrollout
from edgewave_operator.views import agents as agent_views
from edgewave_operator.views import ages
from edgewave_operator.views import rollouts as rollout_views

_PHASE_STYLES = {
    modelrollout.RolloutPhase.SUCCEEDED: "green",
    modelrollout.RolloutPhase.PROGRESSING: "yellow",
    modelrollout.RolloutPhase.COMPILING: "yellow",
    modelrollout.RolloutPhase.FAILED: "red",
    modelrollout.RolloutPhase.ROLLED_BACK: "red",
    modelrollout.RolloutPhase.ROLLING_BACK: "red",
}


def waves_table(rollout: modelrollout.ModelRollout) -> Table:
    status = rollout.status or modelrollout.ModelRolloutStatus()
    phase = status.phase or modelrollout.RolloutPhase.PENDING
    model = rollout.spec.model
    title = Text(f"{rollout_views.name_of(rollout)}  {model.name} {model.version}  ")
    title.append(phase.value, style=_PHASE_STYLES.get(phase, ""))
    title.append(f"  ready {status.ready or '-'}")
    totals = status.totals or modelrollout.RolloutTotals()
    for label, count in (
        ("excluded", totals.excluded),
        ("offline", totals.offline),
        ("converging", totals.converging),
    ):
        if count:
            title.append(f"  {label} {count}")
    table = Table(title=title, title_justify="left", header_style="bold", expand=False)
    for column in ("WAVE", "REGIONS", "PHASE", "UPDATED", "GATE"):
        table.add_column(column)
    recorded = {wave.name: wave for wave in status.waves}
    for spec in rollout.spec.strategy.waves:
        wave = recorded.get(spec.name)
        regions = ", ".join(spec.regions or []) or "(the rest)"
        if wave is None:
            table.add_row(spec.name, regions, "Pending", "-", "-")
            continue
        table.add_row(
            wave.name,
            regions,
            wave.phase.value,
            f"{wave.updated}/{wave.targets}",
            rollout_views.gate_text(wave.gate),
        )
    return table


def _excluded(rollout: modelrollout.ModelRollout) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in rollout.status.exclusions if rollout.status else []:
        for name in item.examples or []:
            found[name] = item.reason
    return found


def cell(agent: edgeagent.EdgeAgent, rollout: modelrollout.ModelRollout) -> Text:
    """What `agent` holds of the rollout's model: the active version, others in brackets."""
    model = rollout.spec.model
    held = [m for m in (agent.status.models if agent.status else []) if m.name == model.name]
    reason = _excluded(rollout).get(agent.metadata.name or "")
    if not held:
        return Text(f"excluded: {reason}" if reason else "-", style="dim")
    text = Text()
    for index, item in enumerate(sorted(held, key=lambda m: m.state is not _ACTIVE)):
        if index:
            text.append(" ")
        if item.state is _ACTIVE:
            style = "green" if item.version == model.version else "yellow"
            text.append(item.version, style=style)
        else:
            text.append(f"({item.version} {item.state.value})", style="dim")
    return text


_ACTIVE = edgeagent.HeldModelState.ACTIVE


def agents_table(
    agents: Sequence[edgeagent.EdgeAgent],
    rollouts: Sequence[modelrollout.ModelRollout],
    *,
    now: datetime.datetime,
) -> Table:
    table = Table(title="Agents", title_justify="left", header_style="bold")
    table.add_column("AGENT")
    table.add_column("REGION")
    table.add_column("GPU")
    for rollout in rollouts:
        table.add_column(rollout.spec.model.name.upper())
    table.add_column("HEALTH")
    table.add_column("SEEN")
    for row in agent_views.rows(agents):
        gpu = row.gpu
        table.add_row(
            row.name,
            row.agent.spec.region,
            f"{gpu.name} ({gpu.compute_capability})" if gpu else "none (CPU)",
            *(cell(row.agent, rollout) for rollout in rollouts),
            row.health,
            ages.age(row.status.last_seen if row.status else None, now=now),
        )
    return table


def render(
    rollouts: Sequence[modelrollout.ModelRollout],
    agents: Sequence[edgeagent.EdgeAgent],
    *,
    now: datetime.datetime,
) -> Group:
    parts: list[RenderableType] = [waves_table(rollout) for rollout in rollouts]
    parts.append(agents_table(agents, rollouts, now=now))
    return Group(*parts)
