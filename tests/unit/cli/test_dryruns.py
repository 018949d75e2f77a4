"""Dry runs: the documented rollouts on the documented GPU fleet, decided by the real planners."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgewave_api import modelrollout, residencypolicy
from edgewave_compiler import keys
from edgewave_compiler import planning as compile_planning
from edgewave_operator import fleetfile
from edgewave_operator.views import dryruns

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "docs" / "examples"
T0 = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
RTX = "1.7.1.116"
BUILDERS = (
    compile_planning.CentralBuilder(
        backend=keys.Backend.TENSORRT_RTX,
        version=RTX,
        compute_capabilities=frozenset({"7.5", "8.0", "8.6", "8.9", "12.0"}),
    ),
    compile_planning.CentralBuilder(backend=keys.Backend.ONNXRUNTIME, version="1.32.0"),
)


def _document(name: str) -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return found


def _rollout(name: str) -> modelrollout.ModelRollout:
    return modelrollout.ModelRollout.model_validate(_document(name))


POLICY = residencypolicy.ResidencyPolicy.model_validate(_document("residencypolicy-eu-only.yaml"))
FLEET = fleetfile.load(ROOT / "docs" / "cli" / "fleet.yaml", now=T0)


def test_three_waves_on_the_gpu_fleet_build_once_per_distinct_key() -> None:
    run = dryruns.dry_run(
        rollout=_rollout("modelrollout-multiregion.yaml"),
        agents=FLEET,
        policies=(),
        builders=BUILDERS,
    )
    assert run.rollout == "classifier-global"
    assert [(w.name, len(w.agents)) for w in run.waves] == [
        ("eu-west", 3),
        ("eu-central", 3),
        ("us-east", 3),
    ]
    builds = {
        (b.key.backend.value, b.key.compute_capability, b.location.value): b.agents
        for b in run.builds
    }
    assert builds == {
        ("TensorRTRTX", "8.6", "central"): ("gpu-eu-central-1", "gpu-us-east-1", "gpu-us-east-2"),
        ("TensorRTRTX", "8.9", "central"): ("gpu-eu-central-2", "gpu-eu-west-1", "gpu-eu-west-2"),
        ("TensorRT", "8.7", "agent"): (
            "jetson-eu-central-1",
            "jetson-eu-west-1",
            "jetson-us-east-1",
        ),
    }
    assert all(b.key.precision is keys.Precision.FP16 for b in run.builds)
    assert len(run.central_builds) == 2
    assert [(e.agent, e.reason) for e in run.exclusions] == [("gpu-us-east-3", "Cordoned")]
    # maxUnavailable 1 (eu-west) and 50% of 3 (rounded down): one agent per batch.
    assert run.waves[0].batches == (("gpu-eu-west-1",), ("gpu-eu-west-2",), ("jetson-eu-west-1",))
    targets = {t.agent: t for t in run.targets}
    assert targets["jetson-eu-west-1"].batch == 3
    assert targets["gpu-eu-central-1"].gpu == "NVIDIA RTX A4000"


def test_eu_only_under_its_policy_excludes_every_us_agent_with_the_reason() -> None:
    run = dryruns.dry_run(
        rollout=_rollout("modelrollout-eu-only.yaml"),
        agents=FLEET,
        policies=[POLICY],
        builders=BUILDERS,
    )
    assert run.residency_sources == ("spec.residency", "ResidencyPolicy/eu-only")
    assert {t.region for t in run.targets} == {"eu-west", "eu-central"}
    assert run.exclusions_by_reason() == {"RegionNotAllowed": 4}
    assert {e.region for e in run.exclusions} == {"us-east"}
    assert [w.name for w in run.waves] == ["eu-west", "rest-of-eu"]
    assert run.waves[1].agents == ("gpu-eu-central-1", "gpu-eu-central-2", "jetson-eu-central-1")


def test_a_missing_policy_excludes_everything_as_the_operator_does() -> None:
    run = dryruns.dry_run(
        rollout=_rollout("modelrollout-eu-only.yaml"), agents=FLEET, policies=(), builders=BUILDERS
    )
    assert run.targets == ()
    assert "ResidencyPolicy/eu-only (not found)" in run.residency_sources
    assert len(run.exclusions) == 10


def test_without_central_builders_rtx_agents_build_on_themselves() -> None:
    run = dryruns.dry_run(
        rollout=_rollout("modelrollout-multiregion.yaml"), agents=FLEET, policies=(), builders=()
    )
    assert run.central_builds == ()
    assert {b.location for b in run.builds} == {compile_planning.BuildLocation.AGENT}
    assert sum(b.build_count for b in run.builds) == 9


def test_agents_no_backend_serves_are_excluded_not_targeted() -> None:
    rollout = _rollout("modelrollout-multiregion.yaml")
    rollout.spec.build.backends = [modelrollout.Backend.TENSORRT_RTX]
    run = dryruns.dry_run(rollout=rollout, agents=FLEET, policies=(), builders=BUILDERS)
    assert run.exclusions_by_reason() == {"Cordoned": 1, "NoCompatibleBackend": 3}
    assert all(t.agent.startswith("gpu-") for t in run.targets)


@pytest.mark.parametrize(
    ("agents", "size", "expected"),
    [
        (("a", "b", "c"), 1, (("a",), ("b",), ("c",))),
        (("a", "b", "c"), 2, (("a", "b"), ("c",))),
        (("a", "b"), 5, (("a", "b"),)),
        ((), 1, ()),
        (("a",), 0, (("a",),)),
    ],
)
def test_batches_cut_a_wave_in_update_order(
    agents: tuple[str, ...], size: int, expected: tuple[tuple[str, ...], ...]
) -> None:
    assert dryruns.batches(agents, max_unavailable=size) == expected
