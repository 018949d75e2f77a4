"""Build keys: everything an engine build depends on, with a stable content digest. Pure.

A build key names the model (by sha256), the backend and its exact version, the target
compute capability, the precision, the shape profiles and the builder options. Two
requests with equal keys get the same engine, so the key's digest (sha256 of a canonical
JSON form) addresses the engine cache and dedupes builds across agents and processes.

This module is pure: no I/O, no toolchain imports. It is also what the operator sends an
agent that must build for itself (`BuildSpec` is the same type), as JSON.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Iterable

import pydantic

KEY_SCHEMA = "edgewave.io/build-key/v1"
"""Part of the canonical form: changing what a key means changes every digest on purpose."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CC = re.compile(r"^(?:sm_?)?(\d{1,2})(?:\.|_)?(\d)$", re.IGNORECASE)


class Backend(enum.StrEnum):
    """Engine backends, spelled as in `ModelRollout.spec.build.backends`."""

    TENSORRT = "TensorRT"
    TENSORRT_RTX = "TensorRTRTX"
    ONNXRUNTIME = "ONNXRuntime"

    @classmethod
    def parse(cls, text: str) -> Backend:
        """Accepts the API spelling or a runtime name (`tensorrt-rtx`, `onnxruntime`, ...)."""
        wanted = _squash(text)
        for backend in cls:
            if _squash(backend.value) == wanted:
                return backend
        names = ", ".join(b.value for b in cls)
        raise ValueError(f"unknown backend {text!r}: use one of {names}")

    @property
    def needs_gpu(self) -> bool:
        return self is not Backend.ONNXRUNTIME


class Precision(enum.StrEnum):
    FP32 = "FP32"
    FP16 = "FP16"
    BF16 = "BF16"
    INT8 = "INT8"


class HardwareCompatibility(enum.StrEnum):
    """TensorRT's hardware-compatibility level; `NONE` binds an engine to one compute capability."""

    NONE = "None"
    AMPERE_PLUS = "AmperePlus"


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def runtime_backend(name: str) -> Backend | None:
    """The backend a reported runtime name stands for (`tensorrt_rtx`, `TensorRT`, ...), if any."""
    try:
        return Backend.parse(name)
    except ValueError:
        return None


def normalize_compute_capability(text: str) -> str:
    """`86`, `8.6`, `sm86`, `SM_86` -> `8.6`; raises ValueError with the accepted forms."""
    match = _CC.match(text.strip())
    if match is None:
        raise ValueError(
            f"compute capability {text!r} is not understood: write it as 8.6, 86 or sm86"
        )
    return f"{int(match.group(1))}.{match.group(2)}"


def compute_capability_tuple(text: str) -> tuple[int, int]:
    major, minor = normalize_compute_capability(text).split(".")
    return int(major), int(minor)


class ShapeProfile(pydantic.BaseModel):
    """Minimum, optimal and maximum shape of one input (TensorRT optimization profile)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    input: str = pydantic.Field(min_length=1)
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> ShapeProfile:
        if not len(self.min) == len(self.opt) == len(self.max):
            raise ValueError(
                f"profile for input {self.input!r}: min, opt and max must have the same rank"
            )
        for lo, mid, hi in zip(self.min, self.opt, self.max, strict=True):
            if lo < 0 or not lo <= mid <= hi:
                raise ValueError(
                    f"profile for input {self.input!r}: need 0 <= min <= opt <= max in every"
                    f" dimension, got min={list(self.min)} opt={list(self.opt)}"
                    f" max={list(self.max)}"
                )
        return self

    @classmethod
    def parse(cls, text: str) -> ShapeProfile:
        """`input:1x3x224x224:8x3x224x224:16x3x224x224` (min:opt:max, dims joined by `x`)."""
        parts = text.split(":")
        if len(parts) < 4:
            raise ValueError(
                f"profile {text!r}: write INPUT:MIN:OPT:MAX with dims joined by x,"
                " e.g. images:1x3x224x224:8x3x224x224:16x3x224x224"
            )
        name = ":".join(parts[:-3])
        try:
            dims = [tuple(int(d) for d in part.split("x")) for part in parts[-3:]]
        except ValueError:
            raise ValueError(
                f"profile {text!r}: dimensions must be integers joined by x, e.g. 1x3x224x224"
            ) from None
        return cls(input=name, min=dims[0], opt=dims[1], max=dims[2])


def sorted_profiles(profiles: Iterable[ShapeProfile]) -> tuple[ShapeProfile, ...]:
    """Profiles in canonical order; a second profile for the same input is an error."""
    by_input: dict[str, ShapeProfile] = {}
    for profile in profiles:
        if profile.input in by_input:
            raise ValueError(f"two shape profiles for input {profile.input!r}: keep one")
        by_input[profile.input] = profile
    return tuple(by_input[name] for name in sorted(by_input))


class BuildKey(pydantic.BaseModel):
    """Everything one engine build depends on. Equal keys, equal engines."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    model_sha256: str
    backend: Backend
    backend_version: str = pydantic.Field(min_length=1)
    compute_capability: str | None = None
    """`8.6` style; None for ONNX Runtime and for hardware-compatible TensorRT engines."""
    precision: Precision = Precision.FP32
    profiles: tuple[ShapeProfile, ...] = ()
    workspace_bytes: int | None = pydantic.Field(default=None, gt=0)
    hardware_compatibility: HardwareCompatibility = HardwareCompatibility.NONE
    version_compatible: bool = False

    @pydantic.model_validator(mode="before")
    @classmethod
    def _schema_tag(cls, data: object) -> object:
        """Accept the canonical form back: its schema tag must be the one this code writes."""
        if isinstance(data, dict) and "schema" in data:
            data = dict(data)
            tag = data.pop("schema")
            if tag != KEY_SCHEMA:
                raise ValueError(
                    f"build key schema {tag!r} is not {KEY_SCHEMA!r}: the operator and this"
                    " compiler differ in version; upgrade the older one"
                )
        return data

    @pydantic.field_validator("model_sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        value = value.lower()
        if not _SHA256.match(value):
            raise ValueError("model_sha256 must be 64 lowercase hex characters (a sha256 digest)")
        return value

    @pydantic.field_validator("compute_capability")
    @classmethod
    def _cc(cls, value: str | None) -> str | None:
        return None if value is None else normalize_compute_capability(value)

    @pydantic.field_validator("profiles")
    @classmethod
    def _profiles(cls, value: tuple[ShapeProfile, ...]) -> tuple[ShapeProfile, ...]:
        return sorted_profiles(value)

    def canonical_json(self) -> str:
        document = {"schema": KEY_SCHEMA, **self.model_dump(mode="json")}
        return json.dumps(document, sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        """sha256 hex of the canonical JSON form: the engine cache address of this build."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def describe(self) -> str:
        """A short human label, e.g. `TensorRTRTX 1.7.1.116 sm8.6 FP16`."""
        target = f" sm{self.compute_capability}" if self.compute_capability else ""
        if self.hardware_compatibility is not HardwareCompatibility.NONE:
            target = f" {self.hardware_compatibility.value}"
        return f"{self.backend.value} {self.backend_version}{target} {self.precision.value}"


BuildSpec = BuildKey
"""What the operator sends an agent that builds for itself: the build key, as JSON."""
