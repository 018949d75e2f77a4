"""TensorRT inference input checks, on the CPU: the pure rules, then the backend using them.

The backend test drives `TensorRtModel` with a stand-in engine and CUDA (no GPU here) that
behave as TensorRT's do: `set_input_shape` returns False for a shape outside the profile,
and `cudaMemcpy` would copy as many bytes as it is told. Before the checks, a wrong rank or
an out-of-profile shape reached `malloc`/`memcpy` sized from the client's array.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from edgewave_agent import errors
from edgewave_agent.backends import shapes, trt

F32 = np.dtype(np.float32)
DYNAMIC = shapes.InputSpec(name="x", dtype=F32, shape=(-1, 4), min_shape=(1, 4), max_shape=(8, 4))
STATIC = shapes.InputSpec(name="x", dtype=F32, shape=(2, 4))


@pytest.mark.parametrize(
    ("spec", "dtype", "shape", "words"),
    [
        (DYNAMIC, F32, (4,), "rank 1"),
        (DYNAMIC, F32, (2, 4, 1), "rank 3"),
        (DYNAMIC, F32, (9, 4), "outside the engine's profile 1..8"),
        (DYNAMIC, F32, (0, 4), "outside the engine's profile 1..8"),
        (DYNAMIC, F32, (2, 5), "fixes it at 4"),
        (DYNAMIC, np.dtype(np.float64), (2, 4), "is float64 but the engine takes float32"),
        (DYNAMIC, np.dtype(np.int64), (2, 4), "is int64"),
        (STATIC, F32, (3, 4), "dimension 0 is 3 but the engine fixes it at 2"),
        (STATIC, F32, (-1, 4), "negative"),
    ],
)
def test_bad_inputs_are_refused(
    spec: shapes.InputSpec, dtype: np.dtype[Any], shape: tuple[int, ...], words: str
) -> None:
    with pytest.raises(errors.InvalidRequest, match=words) as caught:
        shapes.check_input(spec, dtype=dtype, shape=shape)
    assert caught.value.status == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    ("spec", "shape"), [(DYNAMIC, (1, 4)), (DYNAMIC, (8, 4)), (STATIC, (2, 4))]
)
def test_good_inputs_pass(spec: shapes.InputSpec, shape: tuple[int, ...]) -> None:
    shapes.check_input(spec, dtype=F32, shape=shape)


def test_resolved_shape_must_be_the_one_sent() -> None:
    shapes.check_resolved("x", sent=(2, 4), resolved=[2, 4])
    with pytest.raises(errors.InvalidRequest, match="did not accept"):
        shapes.check_resolved("x", sent=(2, 4), resolved=[-1, 4])


def test_buffer_sizes_are_exact_and_bounded() -> None:
    assert shapes.buffer_bytes("y", shape=(3, 5), itemsize=4) == 60
    assert shapes.buffer_bytes("y", shape=(), itemsize=8) == 8
    with pytest.raises(errors.InferenceFailed, match="unresolved shape"):
        shapes.buffer_bytes("y", shape=(-1, 4), itemsize=4)
    with pytest.raises(errors.InvalidRequest, match="over the"):
        shapes.buffer_bytes("y", shape=(1 << 40, 1 << 40), itemsize=4)  # no int64 overflow


class FakeContext:
    """TensorRT's execution context: accepts only shapes within the profile."""

    def __init__(self) -> None:
        self.shapes: dict[str, tuple[int, ...]] = {"x": (-1, 4), "y": (-1, 4)}

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        if len(shape) != 2 or not 1 <= shape[0] <= 8 or shape[1] != 4:
            return False
        self.shapes[name] = self.shapes["y"] = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.shapes[name]

    def set_tensor_address(self, name: str, pointer: int) -> None:
        pass

    def execute_async_v3(self, stream: int) -> bool:
        return True


class FakeEngine:
    num_io_tensors = 2
    num_optimization_profiles = 1

    def get_tensor_name(self, index: int) -> str:
        return ("x", "y")[index]

    def get_tensor_dtype(self, name: str) -> Any:
        return SimpleNamespace(name="FLOAT")

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return (-1, 4)

    def get_tensor_mode(self, name: str) -> str:
        return "input" if name == "x" else "output"

    def get_tensor_profile_shape(self, name: str, profile: int) -> list[tuple[int, ...]]:
        return [(1, 4), (4, 4), (8, 4)]

    def create_execution_context(self) -> FakeContext:
        return FakeContext()


class FakeCuda:
    def __init__(self) -> None:
        self.mallocs: list[int] = []
        self.copies: list[int] = []

    def malloc(self, size: int) -> int:
        self.mallocs.append(size)
        return 0x1000 * len(self.mallocs)

    def free(self, pointer: int) -> None:
        pass

    def copy(self, *, dst: int, src: int, size: int, kind: int) -> None:
        self.copies.append(size)

    def synchronize(self) -> None:
        pass


def _model() -> tuple[trt.TensorRtModel, FakeCuda]:
    fake_trt = SimpleNamespace(TensorIOMode=SimpleNamespace(INPUT="input"))
    cuda = FakeCuda()
    model = trt.TensorRtModel(
        trt=fake_trt,  # type: ignore[arg-type]
        runtime=object(),
        engine=FakeEngine(),
        cuda=cuda,  # type: ignore[arg-type]
    )
    return model, cuda


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.zeros((64, 4), np.float32), "outside the engine's profile"),
        (np.zeros((2, 4, 4), np.float32), "rank 3"),
        (np.zeros(4, np.float32), "rank 1"),
        (np.zeros((2, 4), np.float64), "float64"),
    ],
)
def test_the_backend_refuses_before_touching_device_memory(
    array: np.ndarray[Any, Any], words: str
) -> None:
    model, cuda = _model()
    with pytest.raises(errors.InvalidRequest, match=words):
        model.infer({"x": array})
    assert cuda.mallocs == [] and cuda.copies == []


def test_the_backend_sizes_buffers_from_the_resolved_shapes() -> None:
    model, cuda = _model()
    out = model.infer({"x": np.ones((3, 4), np.float32)})
    assert out["y"].shape == (3, 4)
    assert cuda.mallocs == [48, 48]
    assert cuda.copies == [48, 48]
