"""docs/examples parse with the models; every bad manifest of the API-server table is refused
by the models too, naming the same field (so `edgewave plan FILE` and the API server agree)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from edgewave_api import crdgen

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "docs" / "examples"
CASES: list[dict[str, Any]] = yaml.safe_load(
    (ROOT / "tests" / "integration" / "api" / "invalid_manifests.yaml").read_text()
)
MODELS = {resource.crd.kind: resource for resource in crdgen.RESOURCES}
SAMPLES = [
    (path.name, index, document)
    for path in sorted(EXAMPLES.glob("*.yaml"))
    for index, document in enumerate(yaml.safe_load_all(path.read_text()))
    if document and document.get("kind") in MODELS  # other docs (fleets, GitOps) live here too
]


def _mutated(case: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = copy.deepcopy(
        next(d for name, _, d in SAMPLES if name == case["base"])
    )
    for path, value in case["set"].items():
        *parents, leaf = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(leaf) if isinstance(node, list) else leaf
        if value is None:
            del node[key]
        else:
            node[key] = value
    return document


def test_the_samples_cover_every_kind_and_the_demo_rollouts() -> None:
    kinds = {document["kind"] for _, _, document in SAMPLES}
    assert kinds == set(MODELS)
    files = {name for name, _, _ in SAMPLES}
    assert {"modelrollout-multiregion.yaml", "modelrollout-eu-only.yaml"} <= files
    assert {"residencypolicy-eu-only.yaml", "edgeagents.yaml"} <= files
    names = {document["metadata"]["name"] for _, _, document in SAMPLES}
    assert {"classifier-global", "classifier-eu", "eu-only"} <= names


@pytest.mark.parametrize(
    ("name", "index", "document"), SAMPLES, ids=[f"{n}#{i}" for n, i, _ in SAMPLES]
)
def test_samples_parse(name: str, index: int, document: dict[str, Any]) -> None:
    parsed = MODELS[document["kind"]].model_validate(document)
    assert parsed.metadata.name == document["metadata"]["name"]


def test_the_multiregion_sample_has_three_waves_in_order() -> None:
    (document,) = [d for n, _, d in SAMPLES if n == "modelrollout-multiregion.yaml"]
    rollout = MODELS["ModelRollout"].model_validate(document)
    waves = rollout.spec.strategy.waves  # type: ignore[attr-defined]
    assert [w.name for w in waves] == ["eu-west", "eu-central", "us-east"]
    assert [w.regions for w in waves] == [["eu-west"], ["eu-central"], ["us-east"]]


def test_the_table_has_at_least_twenty_distinct_cases() -> None:
    names = [case["name"] for case in CASES]
    assert len(names) >= 20
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_bad_manifest_is_refused_by_the_models(case: dict[str, Any]) -> None:
    document = _mutated(case)
    with pytest.raises(pydantic.ValidationError) as refused:
        MODELS[document["kind"]].model_validate(document)
    leaf = re.sub(r"\[\d+\]$", "", case["field"]).split(".")[-1]
    assert leaf in str(refused.value)
