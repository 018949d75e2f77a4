"""What a TensorRT inference may send, and how large its device buffers are. Pure.

A TensorRT engine reads and writes device memory at the sizes its execution context
resolves from the input shapes; a buffer sized from the client's array instead, or a shape
the context did not accept, lets one request read or write out of bounds. So every input
is checked here before any device memory is touched: its dtype is the engine's (no silent
casts), its rank is the engine's, every static dimension matches, and every dynamic one lies
within the engine's optimization profile. Buffers are then sized from the shapes the
context resolved (`buffer_bytes`), which must equal what the client sent (`check_resolved`),
and an unresolved (negative) dimension is refused rather than allocated.

No TensorRT, no CUDA: the GPU backend feeds these functions what the engine reports, and
the unit tests feed them tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgewave_agent import errors

MAX_BUFFER_BYTES = 1 << 34
"""No single tensor buffer above 16 GiB (no GPU an agent serves has room for more)."""


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: np.dtype[np.generic]
    shape: tuple[int, ...]
    """The engine's shape; -1 marks a dynamic dimension."""
    min_shape: tuple[int, ...] | None = None
    """The optimization profile's smallest shape (None: the engine has no profile)."""
    max_shape: tuple[int, ...] | None = None


def _show(shape: Sequence[int]) -> str:
    return "[" + ", ".join("?" if d < 0 else str(d) for d in shape) + "]"


def check_input(spec: InputSpec, *, dtype: np.dtype[np.generic], shape: tuple[int, ...]) -> None:
    """Refuse (InvalidRequest) an input the engine cannot take as it is."""
    if dtype != spec.dtype:
        raise errors.InvalidRequest(
            f"input {spec.name!r} is {dtype.name} but the engine takes {spec.dtype.name}:"
            " send the engine's datatype (Describe lists it)"
        )
    if len(shape) != len(spec.shape):
        raise errors.InvalidRequest(
            f"input {spec.name!r} has rank {len(shape)} ({_show(shape)}) but the engine takes"
            f" rank {len(spec.shape)} {_show(spec.shape)}"
        )
    for index, (got, want) in enumerate(zip(shape, spec.shape, strict=True)):
        if got < 0:
            raise errors.InvalidRequest(f"input {spec.name!r} dimension {index} is negative")
        if want >= 0 and got != want:
            raise errors.InvalidRequest(
                f"input {spec.name!r} dimension {index} is {got} but the engine fixes it at"
                f" {want} ({_show(spec.shape)})"
            )
        if want < 0 and spec.min_shape is not None and spec.max_shape is not None:
            low, high = spec.min_shape[index], spec.max_shape[index]
            if not low <= got <= high:
                raise errors.InvalidRequest(
                    f"input {spec.name!r} dimension {index} is {got}, outside the engine's"
                    f" profile {low}..{high} (shape {_show(shape)}, profile"
                    f" {_show(spec.min_shape)} to {_show(spec.max_shape)})"
                )


def check_resolved(name: str, *, sent: tuple[int, ...], resolved: Sequence[int]) -> None:
    """The context must have taken exactly the shape that was sent."""
    if tuple(int(d) for d in resolved) != sent:
        raise errors.InvalidRequest(
            f"the engine did not accept input {name!r} with shape {_show(sent)} (it resolved"
            f" {_show(tuple(int(d) for d in resolved))}): send a shape within its profile"
        )


def buffer_bytes(name: str, *, shape: Sequence[int], itemsize: int) -> int:
    """Bytes of a tensor of `shape`; refuses unresolved dimensions and absurd sizes."""
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise errors.InferenceFailed(
            f"the engine left tensor {name!r} with an unresolved shape {_show(dims)}: engines"
            " with data-dependent output shapes are not supported"
        )
    size = math.prod(dims) * itemsize  # Python integers: no overflow
    if size > MAX_BUFFER_BYTES:
        raise errors.InvalidRequest(
            f"tensor {name!r} of shape {_show(dims)} would need {size} bytes, over the"
            f" {MAX_BUFFER_BYTES}-byte limit"
        )
    return size
