"""Build keys: canonical digests, compute capability and profile syntax."""

from __future__ import annotations

import pytest

from edgewave_compiler import keys

SHA = "ab" * 32


def key(**changes: object) -> keys.BuildKey:
    base: dict[str, object] = {
        "model_sha256": SHA,
        "backend": keys.Backend.TENSORRT_RTX,
        "backend_version": "1.7.1.116",
        "compute_capability": "8.6",
        "precision": keys.Precision.FP16,
        "profiles": (keys.ShapeProfile(input="x", min=(1, 8), opt=(4, 8), max=(16, 8)),),
    }
    return keys.BuildKey.model_validate({**base, **changes})


def test_canonical_form_is_pinned() -> None:
    # Changing this string changes every cache address: bump KEY_SCHEMA when you must.
    assert key().canonical_json() == (
        '{"backend":"TensorRTRTX","backend_version":"1.7.1.116","compute_capability":"8.6",'
        '"hardware_compatibility":"None","model_sha256":"' + SHA + '","precision":"FP16",'
        '"profiles":[{"input":"x","max":[16,8],"min":[1,8],"opt":[4,8]}],'
        '"schema":"edgewave.io/build-key/v1","version_compatible":false,"workspace_bytes":null}'
    )


def test_equal_keys_written_differently_have_one_digest() -> None:
    a = keys.ShapeProfile(input="a", min=(1,), opt=(2,), max=(3,))
    b = keys.ShapeProfile(input="b", min=(1,), opt=(1,), max=(1,))
    first = key(profiles=(a, b), compute_capability="sm86", model_sha256=SHA.upper())
    second = key(profiles=(b, a), compute_capability="86")
    assert first == second
    assert first.digest() == second.digest()
    assert keys.BuildKey.model_validate_json(first.model_dump_json()).digest() == first.digest()
    assert keys.BuildKey.model_validate_json(first.canonical_json()) == first


def test_a_key_from_another_schema_is_refused() -> None:
    text = key().canonical_json().replace("build-key/v1", "build-key/v2")
    with pytest.raises(ValueError, match="upgrade the older one"):
        keys.BuildKey.model_validate_json(text)


@pytest.mark.parametrize(
    "change",
    [
        {"model_sha256": "cd" * 32},
        {"backend": keys.Backend.TENSORRT},
        {"backend_version": "1.7.0.1"},
        {"compute_capability": "8.9"},
        {"precision": keys.Precision.BF16},
        {"profiles": ()},
        {"workspace_bytes": 1 << 30},
        {"hardware_compatibility": keys.HardwareCompatibility.AMPERE_PLUS},
        {"version_compatible": True},
    ],
)
def test_every_field_changes_the_digest(change: dict[str, object]) -> None:
    assert key(**change).digest() != key().digest()


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("8.6", "8.6"),
        ("86", "8.6"),
        ("sm86", "8.6"),
        ("SM_86", "8.6"),
        ("120", "12.0"),
        ("12.1", "12.1"),
        ("sm_75", "7.5"),
    ],
)
def test_compute_capability_spellings(text: str, normalized: str) -> None:
    assert keys.normalize_compute_capability(text) == normalized


@pytest.mark.parametrize("text", ["", "8", "ampere", "8.6.1", "sm"])
def test_bad_compute_capability_says_how_to_write_it(text: str) -> None:
    with pytest.raises(ValueError, match=r"write it as 8\.6, 86 or sm86"):
        keys.normalize_compute_capability(text)


@pytest.mark.parametrize(
    ("name", "backend"),
    [
        ("tensorrt-rtx", keys.Backend.TENSORRT_RTX),
        ("tensorrt_rtx", keys.Backend.TENSORRT_RTX),
        ("TensorRTRTX", keys.Backend.TENSORRT_RTX),
        ("TensorRT", keys.Backend.TENSORRT),
        ("onnxruntime", keys.Backend.ONNXRUNTIME),
        ("ONNXRuntime", keys.Backend.ONNXRUNTIME),
        ("CUDA", None),
    ],
)
def test_runtime_names(name: str, backend: keys.Backend | None) -> None:
    assert keys.runtime_backend(name) is backend


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x:1x8:4x8:16x8", keys.ShapeProfile(input="x", min=(1, 8), opt=(4, 8), max=(16, 8))),
        ("ns:input:1:2:3", keys.ShapeProfile(input="ns:input", min=(1,), opt=(2,), max=(3,))),
    ],
)
def test_profile_syntax(text: str, expected: keys.ShapeProfile) -> None:
    assert keys.ShapeProfile.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x:1x8:4x8", "write INPUT:MIN:OPT:MAX"),
        ("x:1xa:4x8:16x8", "integers joined by x"),
        ("x:4x8:1x8:16x8", "min <= opt <= max"),
        ("x:1x8:4x8:16", "same rank"),
    ],
)
def test_bad_profiles_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        keys.ShapeProfile.parse(text)


def test_two_profiles_for_one_input_are_refused() -> None:
    profile = keys.ShapeProfile(input="x", min=(1,), opt=(1,), max=(1,))
    with pytest.raises(ValueError, match="two shape profiles for input 'x'"):
        key(profiles=(profile, profile))
