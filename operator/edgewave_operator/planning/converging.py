"""Late agents: targets of passed waves brought to the version without a wave. Pure.

Continuous deployment, as Azure Device Update and Greengrass do it: once a wave passed,
those of its targets that do not serve the rollout's version converge to it by
themselves. They were offline while the wave ran (`offline`), joined a targeted region
after it, or lost the version since (drift). No wave runs again for them: no new wave,
no phase change, no gate; the status counts them (`totals.converging`, "converging N late
agents" in its message) and an event names them.

Rules (`decide` applies them to the step `stepping` chose):
- only while the rollout progresses or after it succeeded, and not while paused: never
  while it fails, rolls back or stays failed or rolled back;
- only targets of waves that passed (a running wave updates its own agents). Targets
  are chosen by the one eligibility rule (`targeting.Eligibility`: residency first, then
  the cordon), so an agent a policy forbids never becomes one, and the executor applies
  the same rule again right before it touches the agent;
- never an agent whose activation of the version failed (remembered by its wave or
  reported by the agent): it is not retried until the spec changes;
- only an agent that is connected, heard from, and has an engine; the others wait for
  the next turn (an offline one shows in the `offline` counts);
- at most the wave's `maxUnavailable` at a time, in batches named by the agent's wave, so
  a failure is recorded on that wave;
- level-based: an agent that serves the version is never updated again, and the same
  snapshot gives the same batches (a restarted operator neither pushes twice nor skips).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from edgewave_operator.planning import progress, stepping, targeting, views

_CONVERGING = (progress.Phase.PROGRESSING, progress.Phase.SUCCEEDED)


class Reason(StrEnum):
    LATE = "ConvergingLateAgents"
    DRIFT = "DriftRepair"


@dataclass(frozen=True, slots=True)
class Late:
    """The agents of one passed wave to bring to the version now."""

    wave: targeting.Wave
    agents: tuple[views.AgentView, ...]


def late(
    *,
    intent: stepping.Intent,
    waves: Sequence[targeting.Wave],
    engines: Mapping[str, views.EngineRef],
    current: progress.Progress,
) -> tuple[Late, ...]:
    """Every agent of a passed wave to converge now, by wave (see the module's rules)."""
    if current.phase not in _CONVERGING or intent.paused:
        return ()
    found: list[Late] = []
    for wave in waves:
        record = current.wave(wave.name)
        if record.state is not progress.WaveState.PASSED:
            continue
        agents = tuple(
            agent
            for agent in wave.agents
            if agent.name not in record.failed_agents
            and agent.name in engines
            and agent.reachable
            and agent.observed
            and not stepping.failed_on_agent(agent, model=intent.model, version=intent.version)
            and not stepping.is_updated(
                agent, model=intent.model, version=intent.version, engine=engines[agent.name]
            )
        )
        if agents:
            found.append(Late(wave=wave, agents=agents))
    return tuple(found)


def count(late_agents: Sequence[Late]) -> int:
    return sum(len(item.agents) for item in late_agents)


def converge(
    step: stepping.Step,
    *,
    intent: stepping.Intent,
    waves: Sequence[targeting.Wave],
    engines: Mapping[str, views.EngineRef],
) -> stepping.Step:
    """`step` with the batches that bring late agents to the version, and their events."""
    found = late(intent=intent, waves=waves, engines=engines, current=step.progress)
    if not found:
        return step
    batches = tuple(
        stepping.UpdateBatch(
            wave=item.wave.name,
            updates=tuple(
                stepping.Update(
                    agent=agent.name,
                    model=intent.model,
                    version=intent.version,
                    engine=engines[agent.name],
                    repair=True,
                )
                for agent in item.agents[: item.wave.max_unavailable]
            ),
        )
        for item in found
    )
    agents = [agent for item in found for agent in item.agents]
    drifted = sorted(
        a.name for a in agents if _served(a, model=intent.model, version=intent.version)
    )
    behind = sorted(a.name for a in agents if a.name not in drifted)
    events: list[stepping.Event] = []
    if behind:
        events.append(
            stepping.Event(
                type=stepping.EventType.NORMAL,
                reason=Reason.LATE,
                message=f"converging {len(behind)} late agents to {intent.version}: "
                + _names(behind),
            )
        )
    if drifted:
        events.append(
            stepping.Event(
                type=stepping.EventType.NORMAL,
                reason=Reason.DRIFT,
                message=f"agents {_names(drifted)} no longer serve {intent.version}; restoring it",
            )
        )
    return replace(step, actions=step.actions + batches, events=step.events + tuple(events))


def _served(agent: views.AgentView, *, model: str, version: str) -> bool:
    """`agent` still holds `version` (it had received it): drift, not lateness."""
    return agent.holds(model, version)


def _names(names: Sequence[str], *, shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
