"""The demo's pure pieces: the documentation's samples rendered for its models, and the models."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from edgewave_api import edgeagent, modelrollout
from edgewave_operator.demo import manifests, models

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"


def _model(
    tmp_path: Path, *, shape: tuple[int | str, ...] = ("N", 3, "H", "W")
) -> models.ModelFile:
    return models.write(
        models.classifier(seed=1, shape=shape),
        directory=tmp_path,
        name="classifier",
        version="1.1.0",
        request_shape=models.REQUEST_SHAPE,
    )


@pytest.mark.parametrize("sample", [manifests.GLOBAL_ROLLOUT, manifests.EU_ROLLOUT])
def test_a_rendered_sample_names_the_generated_model_and_stays_valid(
    sample: str, tmp_path: Path
) -> None:
    original = manifests.example(sample)
    kept = copy.deepcopy(original)
    model = _model(tmp_path)
    rendered = manifests.rollout(original, model=model, short=None)
    assert original == kept, "the sample itself is not modified"
    parsed = modelrollout.ModelRollout.model_validate(rendered)
    assert parsed.spec.model.uri == model.uri
    assert parsed.spec.model.uri.startswith("file:///")
    assert parsed.spec.model.sha256 == model.sha256
    assert parsed.spec.model.version == "1.1.0"
    # Everything else is the sample's.
    assert parsed.spec.strategy == modelrollout.ModelRollout.model_validate(kept).spec.strategy
    assert parsed.metadata.name == kept["metadata"]["name"]


def test_short_mode_only_shortens_gates_and_pauses(tmp_path: Path) -> None:
    original = manifests.example(manifests.GLOBAL_ROLLOUT)
    rendered = manifests.rollout(original, model=_model(tmp_path), short=manifests.SHORT)
    strategy = modelrollout.ModelRollout.model_validate(rendered).spec.strategy
    assert strategy.health_gate.window_seconds == manifests.SHORT.window_seconds
    assert strategy.health_gate.min_samples == manifests.SHORT.min_samples
    assert strategy.pause_between_waves_seconds == manifests.SHORT.pause_seconds
    assert strategy.health_gate.max_p95_latency_ms == 50
    assert [w.name for w in strategy.waves] == ["eu-west", "eu-central", "us-east"]


def test_short_mode_never_lengthens_what_is_already_short(tmp_path: Path) -> None:
    original = manifests.example(manifests.GLOBAL_ROLLOUT)
    original["spec"]["strategy"]["healthGate"]["windowSeconds"] = 1
    original["spec"]["strategy"]["pauseBetweenWavesSeconds"] = 0
    rendered = manifests.rollout(original, model=_model(tmp_path), short=manifests.SHORT)
    assert rendered["spec"]["strategy"]["healthGate"]["windowSeconds"] == 1
    assert rendered["spec"]["strategy"]["pauseBetweenWavesSeconds"] == 0


def test_demo_agents_are_selected_by_the_eu_only_sample() -> None:
    agent = edgeagent.EdgeAgent.model_validate(
        manifests.edge_agent(
            name="edge-eu-west-1",
            region="eu-west",
            zone="eu-west-a",
            jurisdiction="EU",
        )
    )
    eu = modelrollout.ModelRollout.model_validate(manifests.example(manifests.EU_ROLLOUT))
    assert eu.spec.targets.selector is not None
    assert eu.spec.targets.selector.matches(agent.metadata.labels or {})


def test_the_classifier_answers_probabilities_for_any_image_size(tmp_path: Path) -> None:
    model = _model(tmp_path)
    session = onnxruntime.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    for shape in ((1, 3, 16, 16), (4, 3, 224, 224)):
        (output,) = session.run(None, {models.INPUT: np.ones(shape, dtype=np.float32)})
        assert output.shape == (shape[0], models.CLASSES)
        np.testing.assert_allclose(output.sum(axis=1), 1.0, rtol=1e-5)


def test_versions_differ_in_their_weights_and_digests(tmp_path: Path) -> None:
    first = models.write(
        models.classifier(seed=1), directory=tmp_path, name="m", version="1", request_shape=(1,)
    )
    second = models.write(
        models.classifier(seed=2), directory=tmp_path, name="m", version="2", request_shape=(1,)
    )
    again = models.classifier(seed=1).SerializeToString()
    assert first.sha256 != second.sha256
    assert first.path.read_bytes() == again, "generation is deterministic"
