"""The objects the demo applies: the documentation's samples, rendered for this machine. Pure.

The rollouts in docs/examples name a placeholder model (an https URI and its sha256); the
demo substitutes the model it generated (a `file://` URI, its real sha256 and version) at
run time, so the samples stay readable and what the demo applies is still them. In short
mode (tests) gate windows, sample counts and pauses shrink; nothing else changes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgewave_api import kubeyaml
from edgewave_operator.demo import models
from edgewave_operator.devcluster import locations

EXAMPLES = locations.REPO_ROOT / "docs" / "examples"
GLOBAL_ROLLOUT = "modelrollout-multiregion.yaml"
EU_ROLLOUT = "modelrollout-eu-only.yaml"
EU_POLICY = "residencypolicy-eu-only.yaml"
FLEET_FILE = locations.REPO_ROOT / "docs" / "cli" / "fleet.yaml"
"""A declared GPU fleet for `edgewave plan --fleet` (not a Kubernetes object)."""
FLEET_LABEL = "edgewave.io/fleet"
FLEET_VALUE = "demo"
"""The label the EU-only sample selects agents by."""


@dataclass(frozen=True)
class Timing:
    """Upper bounds put on the samples' health gates in short mode."""

    window_seconds: int = 3
    min_samples: int = 5
    pause_seconds: int = 1


SHORT = Timing()


def example(name: str, *, directory: Path = EXAMPLES) -> dict[str, Any]:
    """The first document of the sample `name`."""
    document = next(d for d in yaml.safe_load_all((directory / name).read_text()) if d)
    if not isinstance(document, dict):
        raise ValueError(f"{name} does not hold a Kubernetes object")
    return document


def rollout(
    document: dict[str, Any], *, model: models.ModelFile, short: Timing | None
) -> dict[str, Any]:
    """`document` (a ModelRollout) rolling out `model`, with short-mode timings if given."""
    rendered = copy.deepcopy(document)
    source = rendered["spec"]["model"]
    source.update(name=model.name, version=model.version, uri=model.uri, sha256=model.sha256)
    if short is not None:
        strategy = rendered["spec"]["strategy"]
        gate = strategy.setdefault("healthGate", {})
        gate["windowSeconds"] = min(gate.get("windowSeconds", 60), short.window_seconds)
        gate["minSamples"] = min(gate.get("minSamples", 20), short.min_samples)
        pause = strategy.get("pauseBetweenWavesSeconds", 0)
        strategy["pauseBetweenWavesSeconds"] = min(pause, short.pause_seconds)
    return rendered


def edge_agent(
    *,
    name: str,
    region: str,
    zone: str,
    jurisdiction: str,
) -> dict[str, Any]:
    """The EdgeAgent of one demo agent: it serves on CPU, and says so in its labels. No
    endpoint: the agent dials the operator's gateway and is reached through its session."""
    return {
        "apiVersion": "edgewave.io/v1alpha1",
        "kind": "EdgeAgent",
        "metadata": {
            "name": name,
            "labels": {FLEET_LABEL: FLEET_VALUE, "edgewave.io/gpu-class": "cpu"},
        },
        "spec": {
            "region": region,
            "zone": zone,
            "jurisdiction": jurisdiction,
        },
    }


def dump(*documents: dict[str, Any]) -> str:
    return kubeyaml.dump_all(documents)
