"""Backends behind one interface: ONNX Runtime on the CPU; TensorRT-RTX fit checks and GPU runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgewave_agent import backends, errors, inventory, testing
from edgewave_agent.backends import GpuInfo
from edgewave_agent.serving import probing

HAS_GPU = bool(inventory.nvml_gpus())
SM86 = GpuInfo(index=0, name="lab RTX A6000", compute_capability=(8, 6))


def test_onnxruntime_loads_describes_and_infers(tmp_path: Path) -> None:
    path, _ = testing.write_artifact(tmp_path, testing.linear_model(scale=2.0, size=3))
    backend = backends.require(backends.installed(), "ONNXRuntime")  # the API's spelling works
    assert backend.name == "onnxruntime"
    model = backend.load(path)
    assert [(s.name, s.datatype, s.shape) for s in model.inputs] == [("x", "FP32", (-1, 3))]
    outputs = model.infer({"x": np.ones((2, 3), dtype=np.float32)})
    np.testing.assert_allclose(np.asarray(outputs["y"], dtype=np.float64), [[2.25, 4.25, 6.25]] * 2)
    with pytest.raises(errors.InvalidRequest, match="do not match"):
        model.infer({"z": np.ones((2, 3), dtype=np.float32)})
    model.close()


def test_onnxruntime_refuses_what_is_not_a_model(tmp_path: Path) -> None:
    path, _ = testing.write_artifact(tmp_path, b"not onnx")
    with pytest.raises(errors.LoadFailed, match="cannot load"):
        backends.require(backends.installed(), "onnxruntime").load(path)


def test_unknown_backend_names_what_is_installed() -> None:
    with pytest.raises(errors.BackendUnavailable, match=r"it has: .*onnxruntime"):
        backends.require(backends.installed(), "tvm")


def test_probe_inputs_follow_the_metadata(tmp_path: Path) -> None:
    path, _ = testing.write_artifact(tmp_path, testing.linear_model(scale=1.0, nan=True))
    model = backends.require(backends.installed(), "onnxruntime").load(path)
    inputs = probing.synthetic_inputs(model)
    assert inputs["x"].shape == (1, 4)
    with pytest.raises(errors.ProbeFailed, match="NaN"):
        probing.check_outputs(model, model.infer(inputs))


def _rtx_engine(tmp_path: Path, compute_capability: str) -> Path:
    import tensorrt_rtx as trt  # a pinned dependency: failing to import fails the test

    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    model = testing.linear_model(scale=3.0)
    assert parser.parse(model)
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 4), (2, 4), (8, 4))
    config.add_optimization_profile(profile)
    config.num_compute_capabilities = 1
    config.set_compute_capability(getattr(trt.ComputeCapability, f"SM{compute_capability}"), 0)
    engine = builder.build_serialized_network(network, config)
    path = tmp_path / f"sm{compute_capability}.engine"
    path.write_bytes(bytes(engine))
    return path


def test_tensorrt_rtx_engines_are_refused_without_a_gpu(tmp_path: Path) -> None:
    # tensorrt-rtx is pinned: `require` raises BackendUnavailable when it does not import.
    backend = backends.require(backends.installed(), "tensorrt-rtx")
    garbage = tmp_path / "garbage.engine"
    garbage.write_bytes(b"\0" * 4096)
    with pytest.raises(errors.EngineDoesNotFit, match="need an NVIDIA GPU"):
        backend.check_fit(garbage, gpus=[])
    if not HAS_GPU:
        # getEngineValidity answers on a CPU-only machine too: it cannot run here.
        with pytest.raises(errors.EngineDoesNotFit, match="cannot run on this agent") as caught:
            backend.check_fit(garbage, gpus=[SM86])
        # The reason names the problem: TensorRT-RTX's diagnostics and its own words.
        assert "malformed" in str(caught.value) and "runtime says:" in str(caught.value)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU: NVML reports none here")
def test_tensorrt_rtx_fit_check_and_inference_on_a_gpu(tmp_path: Path) -> None:
    gpu = inventory.nvml_gpus()[0]
    major, minor = gpu.compute_capability
    engine = _rtx_engine(tmp_path, f"{major}{minor}")
    backend = backends.require(backends.installed(), "tensorrt-rtx")
    backend.check_fit(engine, gpus=[gpu])
    model = backend.load(engine)
    outputs = model.infer({"x": np.ones((2, 4), dtype=np.float32)})
    np.testing.assert_allclose(
        np.asarray(outputs["y"], dtype=np.float64), np.full((2, 4), 0.25) + np.arange(1, 5) * 3.0
    )
    model.close()
    other = "120" if (major, minor) != (12, 0) else "86"
    with pytest.raises(errors.EngineDoesNotFit, match="another compute capability"):
        backend.check_fit(_rtx_engine(tmp_path, other), gpus=[gpu])
