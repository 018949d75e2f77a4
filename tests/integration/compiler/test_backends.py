"""Real builds: TensorRT-RTX ahead of time on this CPU host, ONNX Runtime, typed failures.

The real builds share one module-scoped compiler run (three builds in worker processes);
failure paths run `building.build_engine` in-process, and one goes through a worker to
show that typed errors cross the process boundary intact.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from edgewave_compiler import (
    backends,
    building,
    cache,
    compiling,
    errors,
    keys,
    precisions,
    samples,
)

Saver = Callable[[onnx.ModelProto | bytes, str], tuple[Path, str]]
# TensorRT-RTX is a pinned dependency on this platform (pyproject.toml): a toolchain that
# does not load is a failure here, never a skip (`load` raises `BackendUnavailable`).
RTX = backends.load(keys.Backend.TENSORRT_RTX)
ORT_VERSION = onnxruntime.__version__
PROFILE = keys.ShapeProfile(input="x", min=(1, 8), opt=(4, 8), max=(16, 8))


def rtx_key(sha: str, cc: str, **changes: object) -> keys.BuildKey:
    base: dict[str, object] = {
        "model_sha256": sha,
        "backend": keys.Backend.TENSORRT_RTX,
        "backend_version": RTX.version,
        "compute_capability": cc,
        "precision": keys.Precision.FP16,
        "profiles": (PROFILE,),
    }
    return keys.BuildKey.model_validate({**base, **changes})


def ort_key(sha: str, **changes: object) -> keys.BuildKey:
    base = {
        "model_sha256": sha,
        "backend": keys.Backend.ONNXRUNTIME,
        "backend_version": ORT_VERSION,
    }
    return keys.BuildKey.model_validate({**base, **changes})


@dataclass(frozen=True)
class Built:
    root: Path
    model: Path
    sha: str
    records: dict[str, cache.EngineRecord]
    workers_started: int


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """One compiler run: TensorRT-RTX FP16 for SM86 and SM120, and ONNX Runtime."""
    root = tmp_path_factory.mktemp("engines")
    model = root / "model.onnx"
    model.write_bytes(samples.matmul_relu().SerializeToString())
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    wanted = {"sm86": rtx_key(sha, "8.6"), "sm120": rtx_key(sha, "12.0"), "ort": ort_key(sha)}
    compiler = compiling.Compiler(cache.EngineCache(root / "cache"), max_workers=2)

    async def build_all() -> list[cache.EngineRecord]:
        return await asyncio.gather(*(compiler.ensure_engine(k, model) for k in wanted.values()))

    records = asyncio.run(build_all())
    return Built(
        root=root,
        model=model,
        sha=sha,
        records=dict(zip(wanted, records, strict=True)),
        workers_started=compiler.workers_started,
    )


def test_two_compute_capabilities_give_two_engines(built: Built) -> None:
    sm86, sm120 = built.records["sm86"], built.records["sm120"]
    assert built.workers_started == 3
    assert sm86.engine_digest != sm120.engine_digest
    assert sm86.key_digest != sm120.key_digest
    for record in (sm86, sm120):
        assert record.engine_path is not None
        data = record.engine_path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == record.engine_digest
        assert len(data) == record.size_bytes > 0
        assert record.built_where == cache.CENTRAL
        assert not record.cache_hit
        assert record.toolchain["TensorRTRTX"] == record.key.backend_version
        assert "building TensorRTRTX" in record.log


def test_second_request_hits_the_cache_without_building(built: Built) -> None:
    engines = cache.EngineCache(built.root / "cache")
    compiler = compiling.Compiler(engines)

    async def again() -> cache.EngineRecord:
        return await compiler.ensure_engine(rtx_key(built.sha, "sm86"), built.model)

    record = asyncio.run(again())
    assert record.cache_hit
    assert record.engine_digest == built.records["sm86"].engine_digest
    assert compiler.workers_started == 0
    assert engines.builds == 0


def test_onnxruntime_artifact_matches_the_source_model(built: Built) -> None:
    record = built.records["ort"]
    assert record.engine_path is not None and record.engine_path.suffix == ".onnx"
    x = np.random.default_rng(7).standard_normal((5, 8)).astype(np.float32)
    providers = ["CPUExecutionProvider"]
    source = onnxruntime.InferenceSession(str(built.model), providers=providers)
    optimized = onnxruntime.InferenceSession(str(record.engine_path), providers=providers)
    [want] = source.run(None, {"x": x})
    [got] = optimized.run(None, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_float16_conversion_keeps_fp32_io_and_close_outputs() -> None:
    model = samples.matmul_relu()
    converted = precisions.prepare(
        model, precision=keys.Precision.FP16, backend=keys.Backend.TENSORRT_RTX
    )
    onnx.checker.check_model(converted, full_check=True)
    assert converted.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert {i.data_type for i in converted.graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert model.graph.initializer[0].data_type == onnx.TensorProto.FLOAT  # input untouched
    x = np.random.default_rng(3).standard_normal((3, 8)).astype(np.float32)
    providers = ["CPUExecutionProvider"]
    [want] = onnxruntime.InferenceSession(model.SerializeToString(), providers=providers).run(
        None, {"x": x}
    )
    [got] = onnxruntime.InferenceSession(converted.SerializeToString(), providers=providers).run(
        None, {"x": x}
    )
    np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2)


def test_bfloat16_conversion_retypes_from_fp32_values() -> None:
    model = samples.matmul_relu()
    converted = precisions.prepare(
        model, precision=keys.Precision.BF16, backend=keys.Backend.TENSORRT_RTX
    )
    onnx.checker.check_model(converted, full_check=True)
    types = {i.name: i.data_type for i in converted.graph.initializer}
    assert types == {"W": onnx.TensorProto.BFLOAT16, "b": onnx.TensorProto.BFLOAT16}
    casts = [n for n in converted.graph.node if n.op_type == "Cast"]
    assert {a.i for n in casts for a in n.attribute} == {
        onnx.TensorProto.BFLOAT16,
        onnx.TensorProto.FLOAT,
    }
    original = onnx.numpy_helper.to_array(model.graph.initializer[0])
    retyped = onnx.numpy_helper.to_array(converted.graph.initializer[0]).astype(np.float32)
    np.testing.assert_allclose(retyped, original, rtol=1e-2)


def test_int8_refuses_a_model_without_qdq() -> None:
    with pytest.raises(errors.UnsupportedPrecision, match=r"pre-quantized .*Q/DQ.*quantize_static"):
        precisions.prepare(
            samples.matmul_relu(), precision=keys.Precision.INT8, backend=keys.Backend.TENSORRT_RTX
        )


def test_int8_builds_a_qdq_model(save: Saver, tmp_path: Path) -> None:
    path, sha = save(samples.quantized_matmul(), "qdq.onnx")
    output = building.build_engine(
        key=rtx_key(sha, "8.9", precision=keys.Precision.INT8, profiles=()),
        model_path=path,
        out_dir=tmp_path / "out",
    )
    assert output.size_bytes > 0
    assert output.artifact.suffix == ".plan"


@pytest.mark.parametrize(
    ("model", "profiles", "cc", "error", "words"),
    [
        (
            samples.single_op("Unique"),
            (),
            "8.6",
            errors.UnsupportedOperator,
            "node 'odd_node' of type Unique",
        ),
        (
            samples.single_op("FancyOp", domain="com.example"),
            (),
            "8.6",
            errors.UnsupportedOperator,
            "node 'odd_node' of type FancyOp",
        ),
        (samples.matmul_relu(), (), "8.6", errors.MissingShapeProfile, "input 'x'"),
        (samples.matmul_relu(batch=2), (), "7.5", errors.BuildFailed, "SM75"),
    ],
    ids=["unique", "custom-op", "no-profile", "fp32-gemm-on-turing"],
)
def test_tensorrt_rtx_failures_are_typed(
    save: Saver,
    tmp_path: Path,
    *,
    model: onnx.ModelProto,
    profiles: tuple[keys.ShapeProfile, ...],
    cc: str,
    error: type[errors.EdgewaveError],
    words: str,
) -> None:
    path, sha = save(model, "m.onnx")
    key = rtx_key(sha, cc, precision=keys.Precision.FP32, profiles=profiles)
    with pytest.raises(error, match=words) as caught:
        building.build_engine(key=key, model_path=path, out_dir=tmp_path / "out")
    assert not caught.value.temporary


def test_onnxruntime_unsupported_operator_names_the_node(save: Saver, tmp_path: Path) -> None:
    path, sha = save(samples.single_op("FancyOp", domain="com.example"), "m.onnx")
    with pytest.raises(errors.UnsupportedOperator) as caught:
        building.build_engine(key=ort_key(sha), model_path=path, out_dir=tmp_path / "out")
    assert "node 'odd_node' of type com.example:FancyOp" in str(caught.value)
    assert "spec.build.backends" in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({"model_sha256": "1" * 64}, errors.DigestMismatch, "spec.model.sha256 names \\(1111"),
        ({"backend_version": "0.1.0"}, errors.BackendUnavailable, "needs ONNXRuntime 0.1.0"),
    ],
)
def test_key_and_file_must_agree(
    save: Saver,
    tmp_path: Path,
    changes: dict[str, object],
    error: type[errors.EdgewaveError],
    words: str,
) -> None:
    path, sha = save(samples.matmul_relu(), "m.onnx")
    with pytest.raises(error, match=words):
        building.build_engine(key=ort_key(sha, **changes), model_path=path, out_dir=tmp_path)


def test_typed_errors_cross_the_worker_boundary(save: Saver, tmp_path: Path) -> None:
    path, sha = save(samples.single_op("FancyOp", domain="com.example"), "m.onnx")
    compiler = compiling.Compiler(cache.EngineCache(tmp_path / "cache"))
    with pytest.raises(errors.UnsupportedOperator, match="odd_node") as caught:
        asyncio.run(compiler.ensure_engine(ort_key(sha), path))
    assert not caught.value.temporary
    assert compiler.workers_started == 1
    assert compiler.cache.entries() == []


def test_tensorrt_backend_says_what_to_install() -> None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tensorrt is installed here; this checks the message when it is not")
    with pytest.raises(errors.BackendUnavailable, match="install `tensorrt`"):
        backends.load(keys.Backend.TENSORRT)
    assert backends.installed(keys.Backend.TENSORRT) is None
    assert keys.Backend.TENSORRT not in {b.backend for b in backends.central_builders()}


@pytest.mark.gpu
def test_tensorrt_builds_for_the_local_gpu(save: Saver, tmp_path: Path) -> None:
    pytest.importorskip(
        "tensorrt",
        reason="the full TensorRT builder cannot be installed from this machine's registries",
    )
    builder = backends.load(keys.Backend.TENSORRT)
    central = builder.central()
    if central is None:
        pytest.skip("no NVIDIA GPU: TensorRT builds for the GPU it runs on")
    [cc] = sorted(central.compute_capabilities)
    path, sha = save(samples.matmul_relu(), "m.onnx")
    key = keys.BuildKey(
        model_sha256=sha,
        backend=keys.Backend.TENSORRT,
        backend_version=builder.version,
        compute_capability=cc,
        precision=keys.Precision.FP16,
        profiles=(PROFILE,),
    )
    output = building.build_engine(key=key, model_path=path, out_dir=tmp_path)
    assert output.size_bytes > 0
