"""The warm-up and health probe a version passes before it may serve.

Exists so a version that loads but answers wrongly (missing outputs, NaN, too slow) never
replaces the one serving: the probe runs on deterministic synthetic inputs, and any
failure is reported as ProbeFailed with the reason and the promise that the previous
version keeps serving.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from edgewave_agent import errors, slots, tensors
from edgewave_agent.backends import Array, LoadedModel
from edgewave_agent.settings import FaultInjection, ProbeConfig


def probe(
    model: str,
    *,
    ref: slots.VersionRef,
    loaded: LoadedModel,
    config: ProbeConfig,
    faults: FaultInjection,
) -> None:
    """Warm `loaded` up, then probe it; raises ProbeFailed saying why."""
    inputs = synthetic_inputs(loaded)
    try:
        for _ in range(config.warmup_runs):
            loaded.infer(inputs)
        for _ in range(config.probe_runs):
            started = time.perf_counter()
            outputs = loaded.infer(inputs)
            elapsed = time.perf_counter() - started
            check_outputs(loaded, outputs)
            limit = config.max_latency_seconds
            if limit is not None and elapsed > limit:
                raise errors.ProbeFailed(
                    f"probe took {elapsed:.3f}s, over probe.max_latency_seconds={limit}"
                )
    except errors.ProbeFailed as error:
        raise errors.ProbeFailed(
            f"{model}:{ref.version} failed its health probe: {error}; the previous version"
            " keeps serving"
        ) from None
    except errors.AgentError as error:
        raise errors.ProbeFailed(
            f"{model}:{ref.version} failed its warm-up: {error}; the previous version keeps serving"
        ) from None
    if FaultInjection.matches(faults.fail_probe_for_versions, model=model, version=ref.version):
        raise errors.ProbeFailed(
            f"{model}:{ref.version} failed its health probe (fault injection); the previous"
            " version keeps serving"
        )


def synthetic_inputs(model: LoadedModel) -> dict[str, Array]:
    """Deterministic probe inputs: every dynamic dimension is 1."""
    inputs: dict[str, Array] = {}
    for spec in model.inputs:
        shape = tuple(d if d > 0 else 1 for d in spec.shape)
        dtype = tensors.dtype_of(spec.datatype)
        inputs[spec.name] = np.full(shape, 0.5 if dtype.kind == "f" else 1, dtype=dtype)
    return inputs


def check_outputs(model: LoadedModel, outputs: Mapping[str, Array]) -> None:
    missing = [spec.name for spec in model.outputs if spec.name not in outputs]
    if missing:
        raise errors.ProbeFailed(f"outputs {missing} are missing")
    for name, array in outputs.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise errors.ProbeFailed(f"output {name} has NaN or infinite values")
