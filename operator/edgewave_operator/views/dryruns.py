"""What a rollout would do to a fleet, decided by the operator's and compiler's planners. Pure.

`dry_run` feeds a ModelRollout, a fleet (EdgeAgents with the status their agents reported,
live or declared) and the ResidencyPolicies through the same pure functions the operator
uses (`planning.reconciling.scope`, `edgewave_compiler.planning.plan_rollout`), in the
operator's order: targets (selector, regions, residency, cordon), the build
key of every target (the compiler's planner, deduplicated: one build per distinct key),
agents no backend can serve excluded, then waves and their batches. Nothing here builds,
reads or writes; `edgewave plan` renders the result and may then run the central builds.

Batches are the one thing the operator decides on the fly (`planning.stepping` updates
the first `maxUnavailable` ready agents of a wave, by name); here every agent is taken as
ready, which is what happens when the whole fleet answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edgewave_api import edgeagent, modelrollout, residencypolicy
from edgewave_compiler import planning as compile_planning
from edgewave_operator.planning import parsing, reconciling, residency, targeting

DEFAULT_OPTIONS = compile_planning.PlanOptions()


@dataclass(frozen=True, slots=True)
class Target:
    """One agent the rollout updates, where, with which engine, built where."""

    agent: str
    region: str
    wave: str
    batch: int
    """1-based batch number within the wave."""
    gpu: str | None
    compute_capability: str | None
    build: compile_planning.PlannedBuild


@dataclass(frozen=True, slots=True)
class WavePlan:
    name: str
    agents: tuple[str, ...]
    max_unavailable: int
    max_failed: int
    batches: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class DryRun:
    rollout: str
    """`namespace/name` (or the name alone when it has no namespace)."""
    model: str
    version: str
    residency_sources: tuple[str, ...]
    """The rules that restrict where the model may go (`spec.residency`, policies)."""
    targets: tuple[Target, ...]
    exclusions: tuple[targeting.Excluded, ...]
    waves: tuple[WavePlan, ...]
    builds: tuple[compile_planning.PlannedBuild, ...]
    """Distinct builds for the targets; central ones once, agent ones on each agent."""

    @property
    def central_builds(self) -> tuple[compile_planning.PlannedBuild, ...]:
        return tuple(b for b in self.builds if b.location is compile_planning.BuildLocation.CENTRAL)

    def exclusions_by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.exclusions:
            counts[item.reason] = counts.get(item.reason, 0) + 1
        return dict(sorted(counts.items()))


def batches(agents: Sequence[str], *, max_unavailable: int) -> tuple[tuple[str, ...], ...]:
    """`agents` (in update order) cut into batches of at most `max_unavailable`."""
    size = max(1, max_unavailable)
    return tuple(tuple(agents[i : i + size]) for i in range(0, len(agents), size))


def _name(rollout: modelrollout.ModelRollout) -> str:
    meta = rollout.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name or ""


def rules_for(
    rollout: modelrollout.ModelRollout, policies: Iterable[residencypolicy.ResidencyPolicy]
) -> residency.ResidencyRules:
    """The rollout's residency rules as the operator applies them (`parsing.effective_rules`)."""
    return parsing.effective_rules(rollout, policies)


def dry_run(
    *,
    rollout: modelrollout.ModelRollout,
    agents: Iterable[edgeagent.EdgeAgent],
    policies: Iterable[residencypolicy.ResidencyPolicy],
    builders: Sequence[compile_planning.CentralBuilder],
    options: compile_planning.PlanOptions = DEFAULT_OPTIONS,
) -> DryRun:
    """The plan of `rollout` over `agents` under `policies` with these central builders."""
    by_name = {agent.metadata.name or "": agent for agent in agents}
    fleet = tuple(parsing.agent_view(agent) for agent in by_name.values())
    scoped = reconciling.scope(rollout, fleet=fleet, policies=tuple(policies))
    intent, rules, found = scoped.intent, scoped.rules, scoped.targeting
    build_plan = compile_planning.plan_rollout(
        rollout.spec,
        statuses={view.name: by_name[view.name].status for view in found.targets},
        builders=builders,
        options=options,
    )
    found = targeting.exclude(
        found,
        refused=dict(build_plan.unservable),
        reason=targeting.Exclusion.NO_COMPATIBLE_BACKEND.value,
    )
    waves, found = targeting.assign_waves(waves=parsing.wave_specs(rollout), targeting=found)
    build_of = {agent: build for build in build_plan.builds for agent in build.agents}
    targets: list[Target] = []
    wave_plans: list[WavePlan] = []
    for wave in waves:
        cut = batches(wave.agent_names, max_unavailable=wave.max_unavailable)
        wave_plans.append(
            WavePlan(
                name=wave.name,
                agents=wave.agent_names,
                max_unavailable=wave.max_unavailable,
                max_failed=wave.max_failed,
                batches=cut,
            )
        )
        for number, batch in enumerate(cut, start=1):
            for name in batch:
                status = by_name[name].status
                gpu = status.gpu if status else None
                targets.append(
                    Target(
                        agent=name,
                        region=by_name[name].spec.region,
                        wave=wave.name,
                        batch=number,
                        gpu=gpu.name if gpu else None,
                        compute_capability=gpu.compute_capability if gpu else None,
                        build=build_of[name],
                    )
                )
    kept = {target.agent for target in targets}
    builds = tuple(_only(build, kept) for build in build_plan.builds if set(build.agents) & kept)
    return DryRun(
        rollout=_name(rollout),
        model=intent.model,
        version=intent.version,
        residency_sources=rules.sources,
        targets=tuple(targets),
        exclusions=tuple(sorted(found.excluded, key=lambda e: (e.region, e.agent))),
        waves=tuple(wave_plans),
        builds=builds,
    )


def _only(build: compile_planning.PlannedBuild, kept: set[str]) -> compile_planning.PlannedBuild:
    """`build` serving only the agents still targeted (others matched no wave)."""
    agents = tuple(agent for agent in build.agents if agent in kept)
    if agents == build.agents:
        return build
    return compile_planning.PlannedBuild(key=build.key, location=build.location, agents=agents)


def waves_of(
    *,
    rollout: modelrollout.ModelRollout,
    agents: Iterable[edgeagent.EdgeAgent],
    policies: Iterable[residencypolicy.ResidencyPolicy],
) -> dict[str, str]:
    """Each targeted agent's wave, by agent name, as the planner assigns it (what
    `edgewave status` and the dashboard show); builds are not needed for that."""
    run = dry_run(rollout=rollout, agents=agents, policies=policies, builders=())
    return {target.agent: target.wave for target in run.targets}
