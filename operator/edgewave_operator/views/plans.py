"""`edgewave plan`: a dry run shown as waves, targets, the build matrix and exclusions. Pure.

The build matrix has one row per distinct build key. Central builds show what the build
(or the cache) produced when `edgewave plan` ran them; builds on agents say so (each such
agent builds its own copy with its local toolchain).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from edgewave_compiler import planning as compile_planning
from edgewave_operator.views import dryruns

LOCATIONS = {
    compile_planning.BuildLocation.CENTRAL: "central",
    compile_planning.BuildLocation.AGENT: "on agent",
}


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What running (or looking up) one central build gave; `error` when it failed."""

    engine_digest: str | None = None
    size_bytes: int | None = None
    build_seconds: float | None = None
    cached: bool = False
    error: str | None = None


Results = Mapping[str, BuildResult]
"""Build key digest -> result; builds not run are absent."""


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def result_text(build: compile_planning.PlannedBuild, results: Results) -> str:
    if build.location is compile_planning.BuildLocation.AGENT:
        count = len(build.agents)
        return f"built on each agent ({count} build{'s' if count != 1 else ''})"
    result = results.get(build.digest)
    if result is None:
        return "not built (dry run)"
    if result.error is not None:
        return f"FAILED: {result.error}"
    size = f"{(result.size_bytes or 0) / 1024:.0f} KiB"
    how = "cached" if result.cached else f"built in {result.build_seconds or 0:.1f} s"
    return f"sha256:{_short(result.engine_digest or '')} {size}, {how}"


def _target(build: compile_planning.PlannedBuild) -> str:
    key = build.key
    if key.compute_capability:
        return f"sm{key.compute_capability}"
    return "portable" if key.hardware_compatibility.value == "None" else key.hardware_compatibility


def summary(run: dryruns.DryRun) -> str:
    central = len(run.central_builds)
    on_agents = sum(b.build_count for b in run.builds) - central
    line = (
        f"{run.rollout}: {run.model} {run.version} -> {len(run.targets)} targets in "
        f"{len(run.waves)} waves, {len(run.exclusions)} excluded, {central} central "
        f"build{'s' if central != 1 else ''}"
    )
    if on_agents:
        line += f" + {on_agents} on agents"
    return line


def waves_table(run: dryruns.DryRun) -> Table:
    table = _table("Waves", "WAVE", "AGENTS", "MAX UNAVAILABLE", "MAX FAILED", "BATCHES")
    for wave in run.waves:
        table.add_row(
            wave.name,
            str(len(wave.agents)),
            str(wave.max_unavailable),
            str(wave.max_failed),
            "  ".join(f"{i}: {', '.join(batch)}" for i, batch in enumerate(wave.batches, 1)) or "-",
        )
    return table


def targets_table(run: dryruns.DryRun) -> Table:
    table = _table("Targets", "AGENT", "REGION", "WAVE", "BATCH", "GPU", "CC", "ENGINE", "BUILT")
    for target in run.targets:
        table.add_row(
            target.agent,
            target.region,
            target.wave,
            str(target.batch),
            target.gpu or "none (CPU)",
            target.compute_capability or "-",
            f"{target.build.key.describe()} ({target.build.digest[:12]})",
            LOCATIONS[target.build.location],
        )
    return table


def builds_table(run: dryruns.DryRun, results: Results) -> Table:
    table = _table(
        "Build matrix (one build per distinct key)",
        "KEY",
        "BACKEND",
        "TARGET",
        "PRECISION",
        "WHERE",
        "AGENTS",
        "ENGINE",
    )
    for build in run.builds:
        key = build.key
        table.add_row(
            build.digest[:12],
            f"{key.backend.value} {key.backend_version}",
            _target(build),
            key.precision.value,
            LOCATIONS[build.location],
            str(len(build.agents)),
            result_text(build, results),
        )
    return table


def exclusions_table(run: dryruns.DryRun) -> Table:
    table = _table("Excluded", "AGENT", "REGION", "REASON", "WHY")
    for item in run.exclusions:
        table.add_row(item.agent, item.region, item.reason, item.message)
    return table


def renderables(run: dryruns.DryRun, results: Results) -> list[RenderableType]:
    parts: list[RenderableType] = [Text(summary(run), style="bold")]
    if run.residency_sources:
        parts.append(Text("residency: " + ", ".join(run.residency_sources)))
    parts += [waves_table(run), targets_table(run), builds_table(run, results)]
    parts.append(exclusions_table(run) if run.exclusions else Text("Excluded: none"))
    return parts


def render(run: dryruns.DryRun, results: Results) -> Group:
    return Group(*renderables(run, results))


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _result_document(
    build: compile_planning.PlannedBuild, results: Results
) -> dict[str, Any] | None:
    result = results.get(build.digest)
    if result is None:
        return None
    if result.error is not None:
        return {"error": result.error}
    return {
        "engineDigest": f"sha256:{(result.engine_digest or '').removeprefix('sha256:')}",
        "sizeBytes": result.size_bytes,
        "buildSeconds": result.build_seconds,
        "cached": result.cached,
    }


def document(run: dryruns.DryRun, results: Results) -> dict[str, Any]:
    """The dry run for `-o json|yaml`."""
    return {
        "rollout": run.rollout,
        "model": run.model,
        "version": run.version,
        "residency": list(run.residency_sources),
        "waves": [
            {
                "name": wave.name,
                "agents": list(wave.agents),
                "maxUnavailable": wave.max_unavailable,
                "maxFailed": wave.max_failed,
                "batches": [list(batch) for batch in wave.batches],
            }
            for wave in run.waves
        ],
        "targets": [
            {
                "agent": t.agent,
                "region": t.region,
                "wave": t.wave,
                "batch": t.batch,
                "gpu": t.gpu,
                "computeCapability": t.compute_capability,
                "build": t.build.digest,
                "location": t.build.location.value,
            }
            for t in run.targets
        ],
        "builds": [_build_document(build, results) for build in run.builds],
        "exclusions": [
            {
                "agent": e.agent,
                "region": e.region,
                "reason": e.reason,
                "message": e.message,
                "source": e.source or None,
            }
            for e in run.exclusions
        ],
    }


def _build_document(build: compile_planning.PlannedBuild, results: Results) -> dict[str, Any]:
    key = build.key
    return {
        "key": build.digest,
        "description": key.describe(),
        "backend": key.backend.value,
        "backendVersion": key.backend_version,
        "computeCapability": key.compute_capability,
        "precision": key.precision.value,
        "location": build.location.value,
        "agents": list(build.agents),
        "builds": build.build_count,
        "result": _result_document(build, results),
    }


def failed_builds(run: dryruns.DryRun, results: Results) -> Sequence[tuple[str, str]]:
    """(key description, error) of every central build that failed."""
    return [
        (build.key.describe(), result.error)
        for build in run.central_builds
        if (result := results.get(build.digest)) is not None and result.error is not None
    ]
