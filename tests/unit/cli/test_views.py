"""Views: rows, documents and tables made from API objects, with the time passed in."""

from __future__ import annotations

import datetime
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console, RenderableType

from edgewave_api import conditions, edgeagent, meta, modelrollout
from edgewave_compiler import keys
from edgewave_compiler import planning as compile_planning
from edgewave_operator import fleetfile
from edgewave_operator.views import agents, ages, dryruns, outputs, plans, progress, rollouts

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "docs" / "examples"
T0 = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def _text(renderable: RenderableType) -> str:
    console = Console(file=io.StringIO(), width=250, color_system=None)
    console.print(renderable)
    output = console.file
    assert isinstance(output, io.StringIO)
    return output.getvalue()


def _row(text: str, first: str) -> list[str]:
    """The cells of the first table row whose first cell is `first`."""
    for line in text.splitlines():
        cells = [c for c in line.replace("│", " ").replace("┃", " ").split() if c]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row starts with {first}")


def _conditions(**statuses: bool) -> list[conditions.Condition]:
    found: list[conditions.Condition] = []
    for kind, value in statuses.items():
        found = conditions.set_condition(
            found, type=kind, status=value, reason="Test", message="", observed_generation=1, now=T0
        )
    return found


def _agent(
    name: str,
    *,
    region: str = "eu-west",
    status: edgeagent.EdgeAgentStatus | None = None,
    cordoned: bool = False,
) -> edgeagent.EdgeAgent:
    return edgeagent.EdgeAgent(
        metadata=meta.ObjectMeta(name=name),
        spec=edgeagent.EdgeAgentSpec(
            endpoint=f"{name}:7443", region=region, jurisdiction="EU", cordoned=cordoned
        ),
        status=status,
    )


HELD = [
    edgeagent.HeldModel(
        name="classifier",
        version="1.1.0",
        digest="sha256:" + "a" * 64,
        backend=modelrollout.Backend.ONNX_RUNTIME,
        state=edgeagent.HeldModelState.ACTIVE,
        p95_latency_ms=0.4,
        error_rate=0.0,
    ),
    edgeagent.HeldModel(
        name="classifier",
        version="1.0.0",
        digest="sha256:" + "b" * 64,
        backend=modelrollout.Backend.ONNX_RUNTIME,
        state=edgeagent.HeldModelState.STANDBY,
    ),
]
SEEN = edgeagent.EdgeAgentStatus(
    runtimes=[edgeagent.RuntimeInfo(name="ONNXRuntime", version="1.32.0")],
    models=HELD,
    last_seen=T0 - datetime.timedelta(seconds=42),
    conditions=_conditions(Reachable=True, Ready=True),
    agent_version="0.1.0",
)


@pytest.mark.parametrize(
    ("status", "cordoned", "expected"),
    [
        (None, False, "Unknown"),
        (SEEN, False, "Ready"),
        (SEEN, True, "Ready,Cordoned"),
        (
            edgeagent.EdgeAgentStatus(conditions=_conditions(Reachable=True, Ready=False)),
            False,
            "NotReady",
        ),
        (
            edgeagent.EdgeAgentStatus(conditions=_conditions(Reachable=False, Ready=False)),
            False,
            "Unreachable",
        ),
    ],
)
def test_health_reads_the_operators_conditions(
    status: edgeagent.EdgeAgentStatus | None, cordoned: bool, expected: str
) -> None:
    assert agents.health(_agent("a", status=status, cordoned=cordoned)) == expected


def test_agent_rows_are_by_region_then_name_and_filter_by_region() -> None:
    fleet = [_agent("b", region="us-east"), _agent("c"), _agent("a")]
    assert [r.name for r in agents.rows(fleet)] == ["a", "c", "b"]
    assert [r.name for r in agents.rows(fleet, region="us-east")] == ["b"]
    assert agents.rows(fleet, region="nowhere") == []


def test_the_agents_document_is_json_and_yaml_with_models_and_last_seen() -> None:
    document = agents.document(agents.rows([_agent("edge-1", status=SEEN), _agent("edge-2")]))
    for output, parse in ((outputs.Format.JSON, json.loads), (outputs.Format.YAML, yaml.safe_load)):
        parsed: dict[str, Any] = parse(outputs.dump(document, output=output))
        first, second = parsed["agents"]
        assert first["name"] == "edge-1"
        assert first["gpu"] is None
        assert first["health"] == "Ready"
        assert first["lastSeen"] == "2026-01-02T03:03:23Z"
        assert [(m["version"], m["state"]) for m in first["models"]] == [
            ("1.1.0", "Active"),
            ("1.0.0", "Standby"),
        ]
        assert first["runtimes"] == [{"name": "ONNXRuntime", "version": "1.32.0"}]
        assert second["health"] == "Unknown"
        assert second["lastSeen"] is None


def test_the_agents_table_shows_gpu_models_health_and_age_and_wide_adds_more() -> None:
    declared = fleetfile.load(
        ROOT / "docs" / "cli" / "fleet.yaml", now=T0 - datetime.timedelta(hours=3)
    )
    fleet = [*declared[:1], _agent("edge-cpu", status=SEEN)]
    table = _text(agents.table(agents.rows(fleet), now=T0))
    assert declared[0].metadata.name == "gpu-eu-central-1"
    assert "NVIDIA RTX A4000" in table
    assert "8.6" in table
    assert "none (CPU)" in table
    assert "classifier:1.1.0, classifier:1.0.0 (Standby)" in table
    assert "42s" in table
    assert "ENDPOINT" not in table
    wide = _text(agents.table(agents.rows(fleet), now=T0, wide=True))
    assert "edge-cpu:7443" in wide
    assert "ONNXRuntime 1.32.0" in wide


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (7199, "119m"),
        (7200, "2h"),
        (200000, "2d"),
        (-5, "0s"),
    ],
)
def test_ages_read_like_kubectl(seconds: int, expected: str) -> None:
    assert ages.age(T0 - datetime.timedelta(seconds=seconds), now=T0) == expected


def test_an_unknown_time_has_no_age() -> None:
    assert ages.age(None, now=T0) == "-"


def test_machine_formats_only() -> None:
    with pytest.raises(ValueError, match="not a machine-readable format"):
        outputs.dump({}, output=outputs.Format.TABLE)


def _dry_run() -> dryruns.DryRun:
    rollout = modelrollout.ModelRollout.model_validate(
        yaml.safe_load((EXAMPLES / "modelrollout-multiregion.yaml").read_text())
    )
    builders = (
        compile_planning.CentralBuilder(
            backend=keys.Backend.TENSORRT_RTX,
            version="1.7.1.116",
            compute_capabilities=frozenset({"8.6", "8.9"}),
        ),
    )
    return dryruns.dry_run(
        rollout=rollout,
        agents=fleetfile.load(ROOT / "docs" / "cli" / "fleet.yaml", now=T0),
        policies=(),
        builders=builders,
    )


def test_the_plan_document_lists_waves_targets_builds_with_results_and_exclusions() -> None:
    run = _dry_run()
    central = run.central_builds
    results = {
        central[0].digest: plans.BuildResult(
            engine_digest="c" * 64, size_bytes=2048, build_seconds=0.7, cached=False
        ),
        central[1].digest: plans.BuildResult(error="out of memory"),
    }
    document = json.loads(outputs.dump(plans.document(run, results), output=outputs.Format.JSON))
    assert document["waves"][0]["batches"] == [
        ["gpu-eu-west-1"],
        ["gpu-eu-west-2"],
        ["jetson-eu-west-1"],
    ]
    by_location: dict[str, list[dict[str, Any]]] = {}
    for build in document["builds"]:
        by_location.setdefault(build["location"], []).append(build)
    assert len(by_location["central"]) == 2
    (agent_build,) = by_location["agent"]
    assert agent_build["builds"] == 3
    assert agent_build["result"] is None
    assert [b["result"] for b in by_location["central"] if b["key"] == central[1].digest] == [
        {"error": "out of memory"}
    ]
    assert document["exclusions"][0]["reason"] == "Cordoned"
    assert plans.failed_builds(run, results) == [(central[1].key.describe(), "out of memory")]


def test_the_plan_tables_say_how_each_engine_came_about() -> None:
    run = _dry_run()
    results = {
        run.central_builds[0].digest: plans.BuildResult(
            engine_digest="d" * 64, size_bytes=4096, build_seconds=1.25
        ),
        run.central_builds[1].digest: plans.BuildResult(
            engine_digest="e" * 64, size_bytes=4096, build_seconds=1.0, cached=True
        ),
    }
    text = _text(plans.render(run, results))
    assert plans.summary(run) in text
    assert "sha256:dddddddddddd 4 KiB, built in 1.2 s" in text
    assert "cached" in text
    assert "built on each agent (3 builds)" in text
    assert "Cordoned" in text
    assert "not built (dry run)" in _text(plans.render(run, {}))


def _rollout_with_status() -> modelrollout.ModelRollout:
    rollout = modelrollout.ModelRollout.model_validate(
        yaml.safe_load((EXAMPLES / "modelrollout-eu-only.yaml").read_text())
    )
    rollout.metadata.namespace = "default"
    rollout.metadata.generation = 2
    rollout.status = modelrollout.ModelRolloutStatus(
        observed_generation=2,
        phase=modelrollout.RolloutPhase.PROGRESSING,
        ready="1/4",
        current_wave="rest-of-eu",
        waves=[
            modelrollout.WaveStatus(
                name="eu-west",
                phase=modelrollout.WavePhase.SUCCEEDED,
                targets=2,
                updated=2,
                healthy=2,
                offline=1,
                gate=modelrollout.GateMeasurement(
                    samples=25, p95_latency_ms=1.25, error_rate=0.0, passed=True
                ),
            )
        ],
        exclusions=[
            modelrollout.ExclusionSummary(
                reason="RegionNotAllowed", count=2, examples=["edge-us-1", "edge-us-2"]
            )
        ],
        totals=modelrollout.RolloutTotals(
            targets=4, updated=2, healthy=1, excluded=2, offline=1, converging=1
        ),
        conditions=_conditions(Ready=False, Progressing=True),
    )
    return rollout


@pytest.mark.parametrize(
    ("gate", "expected"),
    [
        (None, "-"),
        (modelrollout.GateMeasurement(samples=3), "3 req (measuring)"),
        (
            modelrollout.GateMeasurement(
                samples=25, p95_latency_ms=1.25, error_rate=0.04, passed=False
            ),
            "25 req, p95 1.2 ms, err 0.040 (failed)",
        ),
    ],
)
def test_gate_numbers(gate: modelrollout.GateMeasurement | None, expected: str) -> None:
    assert rollouts.gate_text(gate) == expected


def test_status_shows_waves_with_gates_and_the_agents_holding_the_model() -> None:
    rollout = _rollout_with_status()
    holder = edgeagent.EdgeAgentStatus(
        models=[HELD[0].model_copy(update={"name": "classifier-eu", "version": "1.0.0"})],
        conditions=_conditions(Reachable=True, Ready=True),
    )
    fleet = [
        _agent("edge-eu-1", status=holder),
        _agent("edge-c-1", region="eu-central"),
        _agent("edge-us-1", region="us-east"),
    ]
    lines = rollouts.agent_lines(
        rollout, fleet, waves={"edge-eu-1": "eu-west", "edge-c-1": "rest-of-eu"}
    )
    assert [(line.name, line.wave, line.active) for line in lines] == [
        ("edge-eu-1", "eu-west", "1.0.0"),
        ("edge-c-1", "rest-of-eu", None),
    ]
    text = _text(rollouts.render(rollout, lines, now=T0))
    assert "default/classifier-eu: classifier-eu 1.0.0" in text
    assert "25 req, p95 1.2 ms, err 0.000 (passed)" in text
    assert "RegionNotAllowed" in text
    assert "edge-us-1, edge-us-2" in text
    assert "OFFLINE" in text
    assert _row(text, "eu-west")[:6] == ["eu-west", "Succeeded", "2", "2", "2", "0"]
    assert _row(text, "eu-west")[6] == "1"
    document = rollouts.document(rollout, lines)
    assert document["ready"] is False
    assert document["status"]["waves"][0]["gate"]["samples"] == 25
    assert document["agents"][0]["serving"] == "1.0.0"


@pytest.mark.parametrize(
    "status",
    [None, modelrollout.ModelRolloutStatus(observed_generation=0)],
    ids=["absent", "as-the-api-server-serves-it-before-the-first-write"],
)
def test_a_rollout_without_status_says_the_operator_has_not_seen_it(
    status: modelrollout.ModelRolloutStatus | None,
) -> None:
    rollout = _rollout_with_status()
    rollout.status = status
    assert "is the operator running" in _text(rollouts.render(rollout, [], now=T0))


def test_the_live_view_shows_versions_and_exclusions_per_agent() -> None:
    rollout = _rollout_with_status()
    holder = edgeagent.EdgeAgentStatus(
        models=[
            HELD[0].model_copy(update={"name": "classifier-eu", "version": "1.0.0"}),
            HELD[1].model_copy(update={"name": "classifier-eu", "version": "0.9.0"}),
        ]
    )
    assert (
        progress.cell(_agent("edge-eu-1", status=holder), rollout).plain == "1.0.0 (0.9.0 Standby)"
    )
    assert progress.cell(_agent("edge-us-1"), rollout).plain == "excluded: RegionNotAllowed"
    assert progress.cell(_agent("edge-c-1"), rollout).plain == "-"
    text = _text(progress.render([rollout], [_agent("edge-eu-1", status=holder)], now=T0))
    assert "rest-of-eu" in text
    assert "(the rest)" in text
    assert "excluded 2  offline 1" in text and "converging 1" in text  # the title wraps
