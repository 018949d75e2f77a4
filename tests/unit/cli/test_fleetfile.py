"""The declared fleet file: the documentation's fleet loads, and mistakes are one clear line."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from edgewave_api import conditions, edgeagent
from edgewave_operator import fleetfile

ROOT = Path(__file__).resolve().parents[3]
FLEET = ROOT / "docs" / "cli" / "fleet.yaml"
T0 = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def test_the_documented_fleet_has_two_rtx_classes_and_a_jetson_class_in_three_regions() -> None:
    agents = fleetfile.load(FLEET, now=T0)
    by_name = {a.metadata.name: a for a in agents}
    assert len(agents) == 10
    assert {a.spec.region for a in agents} == {"eu-west", "eu-central", "us-east"}
    capabilities = {a.status.gpu.compute_capability for a in agents if a.status and a.status.gpu}
    assert capabilities == {"8.6", "8.9", "8.7"}
    jetson = by_name["jetson-eu-west-1"]
    assert jetson.status is not None
    assert {r.name for r in jetson.status.runtimes} == {"TensorRT", "ONNXRuntime"}
    assert jetson.metadata.labels == {
        "edgewave.io/fleet": "demo",
        "edgewave.io/gpu-class": "jetson-orin",
    }
    assert by_name["gpu-us-east-3"].spec.cordoned
    assert by_name["gpu-us-east-1"].spec.jurisdiction == "US"
    # Declared agents look reachable and ready, and say where that came from.
    status = by_name["gpu-eu-west-1"].status
    assert status is not None
    assert conditions.is_true(status.conditions, edgeagent.AgentConditionType.READY)
    assert {c.reason for c in status.conditions} == {fleetfile.DECLARED_REASON}
    assert status.reported_region == "eu-west"


def test_the_fleet_pins_the_tensorrt_rtx_release_this_environment_builds_with() -> None:
    """A central TensorRT-RTX engine loads only on the same release: keep the file in step."""
    import tensorrt_rtx  # a pinned dependency: failing to import fails the test

    installed = tensorrt_rtx.__version__
    versions = {
        runtime.version
        for agent in fleetfile.load(FLEET, now=T0)
        for runtime in (agent.status.runtimes if agent.status else [])
        if runtime.name == "TensorRTRTX"
    }
    assert versions == {installed}, "update the TensorRTRTX versions in docs/cli/fleet.yaml"


GOOD = """
fleet: tiny
classes:
  - name: cpu
    runtimes: [{name: ONNXRuntime, version: 1.32.0}]
regions:
  - region: eu-west
    agents: [{name: a-1, class: cpu}]
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("classes: []\n", "is not a fleet file: it needs `fleet: NAME`"),
        (
            "apiVersion: edgewave.io/v1alpha1\nkind: Fleet\n",
            "is a Kubernetes manifest (kind Fleet), not a fleet file",
        ),
        ("[1, 2", "is not valid YAML"),
        (GOOD.replace("class: cpu", "class: gpu"), "names class 'gpu', which is not declared"),
        (
            GOOD.replace(
                "[{name: a-1, class: cpu}]", "[{name: a-1, class: cpu}, {name: a-1, class: cpu}]"
            ),
            "agent name a-1 appears twice",
        ),
        (
            GOOD.replace("region: eu-west", "region: EU_West"),
            "regions.0.region: String should match",
        ),
        (GOOD + "colour: blue\n", "colour: Extra inputs are not permitted"),
    ],
    ids=[
        "not-a-fleet",
        "a-manifest",
        "bad-yaml",
        "unknown-class",
        "duplicate",
        "bad-region",
        "unknown-field",
    ],
)
def test_mistakes_are_reported_on_one_line_naming_the_file(text: str, message: str) -> None:
    with pytest.raises(fleetfile.FleetError) as caught:
        fleetfile.parse(text, source="my-fleet.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("my-fleet.yaml")
    assert "\n" not in str(caught.value)


def test_a_minimal_fleet_gives_agents_without_a_gpu() -> None:
    (agent,) = fleetfile.agents(fleetfile.parse(GOOD, source="f"), now=T0)
    assert agent.metadata.name == "a-1"
    assert agent.status is not None
    assert agent.status.gpu is None


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(fleetfile.FleetError, match=r"cannot read fleet file .*missing\.yaml"):
        fleetfile.load(tmp_path / "missing.yaml", now=T0)
