"""Model intake: checked models and profiles (fetching: test_fetching.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest

from edgewave_compiler import errors, intake, keys, samples

Saver = Callable[[onnx.ModelProto | bytes, str], tuple[Path, str]]
GOOD = samples.matmul_relu().SerializeToString()
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


def test_inspect_lists_inputs_outputs_and_dynamic_dims(save: Saver) -> None:
    path, sha = save(samples.matmul_relu(), "m.onnx")
    info = intake.inspect(path)
    assert info.sha256 == sha
    assert info.opset == samples.OPSET
    assert [(t.name, t.dtype, t.shape) for t in info.inputs] == [("x", "FLOAT", ("N", 8))]
    assert [(t.name, t.dtype, t.shape) for t in info.outputs] == [("y", "FLOAT", ("N", 4))]
    assert info.inputs[0].dynamic_dims == (0,)
    assert ("", "MatMul") in info.op_types
    assert not info.is_quantized
    assert intake.inspect(save(samples.quantized_matmul(), "q.onnx")[0]).is_quantized


def _bad_opset() -> onnx.ModelProto:
    model = samples.matmul_relu()
    model.opset_import[0].version = 99
    return model


def _dangling_input() -> onnx.ModelProto:
    model = samples.matmul_relu()
    model.graph.node[1].input[0] = "nowhere"
    return model


@pytest.mark.parametrize(
    ("content", "error", "words"),
    [
        (GOOD[: len(GOOD) // 2], errors.InvalidModel, "truncated or another format"),
        (b"<!doctype html><html>login</html>", errors.InvalidModel, "looks like HTML"),
        (b"PK\x03\x04" + bytes(60), errors.InvalidModel, "zip archive"),
        (bytes(range(256)) * 4, errors.InvalidModel, "Re-export or re-upload"),
        (
            _bad_opset().SerializeToString(),
            errors.UnsupportedOpset,
            "re-export the model with opset",
        ),
        (_dangling_input().SerializeToString(), errors.InvalidModel, "fails the ONNX checker"),
    ],
    ids=["truncated", "html", "zip", "binary-junk", "opset-99", "checker"],
)
def test_bad_model_bytes_are_typed_errors(
    save: Saver, content: bytes, error: type[errors.EdgewaveError], words: str
) -> None:
    path, _ = save(content, "bad.onnx")
    with pytest.raises(error, match=words) as caught:
        intake.inspect(path)
    assert not caught.value.temporary


def _info(batch: int | str = "N") -> intake.ModelInfo:
    return intake.inspect_model(samples.matmul_relu(batch=batch), path=Path("m.onnx"), sha256="0")


def test_dynamic_input_without_profile_names_input_and_dim() -> None:
    with pytest.raises(errors.MissingShapeProfile) as caught:
        intake.check_profiles(_info(), [])
    message = str(caught.value)
    assert "input 'x'" in message
    assert "dynamic dimension 0 ('N')" in message
    assert "--profile x:1x8:4x8:16x8" in message
    assert "spec.build.profiles" in message


@pytest.mark.parametrize(
    ("profile", "words"),
    [
        (keys.ShapeProfile(input="images", min=(1, 8), opt=(1, 8), max=(1, 8)), "inputs: x"),
        (keys.ShapeProfile(input="x", min=(1,), opt=(1,), max=(1,)), "rank 1"),
        (keys.ShapeProfile(input="x", min=(1, 4), opt=(1, 8), max=(1, 8)), "fixes it at 8"),
    ],
)
def test_profiles_must_fit_the_model(profile: keys.ShapeProfile, words: str) -> None:
    with pytest.raises(errors.InvalidShapeProfile, match=words):
        intake.check_profiles(_info(), [profile])


def test_static_model_needs_no_profile_and_good_profile_passes() -> None:
    static, dynamic = _info(batch=2), _info()
    # What makes the two calls below meaningful: one input fixed, one with a dynamic batch.
    assert [(t.name, t.shape, t.dynamic_dims) for t in static.inputs] == [("x", (2, 8), ())]
    assert [(t.name, t.dynamic_dims) for t in dynamic.inputs] == [("x", (0,))]
    good = keys.ShapeProfile(input="x", min=(1, 8), opt=(4, 8), max=(16, 8))
    intake.check_profiles(static, [])  # raises if refused
    intake.check_profiles(dynamic, [good])
    # The same dynamic model without the profile is refused: the pass above is the profile's.
    with pytest.raises(errors.MissingShapeProfile, match="input 'x'"):
        intake.check_profiles(dynamic, [])
