"""Fixtures for the compiler tests: writing generated models (or raw bytes) to disk."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest

Saver = Callable[[onnx.ModelProto | bytes, str], tuple[Path, str]]


@pytest.fixture
def save(tmp_path: Path) -> Saver:
    """Write a model (or raw bytes) under tmp_path; returns the path and its sha256."""

    def write(model: onnx.ModelProto | bytes, name: str) -> tuple[Path, str]:
        data = model if isinstance(model, bytes) else model.SerializeToString()
        path = tmp_path / name
        path.write_bytes(data)
        return path, hashlib.sha256(data).hexdigest()

    return write
