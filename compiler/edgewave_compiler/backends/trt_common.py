"""The build path TensorRT and TensorRT-RTX share, parameterized by the Python module.

Both expose the same builder API (`Builder`, `OnnxParser`, optimization profiles, memory
pools, strongly typed networks); they differ only in how a build is aimed at hardware:
TensorRT-RTX compiles ahead of time for a chosen compute capability on any host, while
TensorRT builds for the GPU it runs on, optionally hardware- or version-compatible. The
subclasses supply that difference in `configure_target`.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import onnx

from edgewave_compiler import backends, errors, intake, keys, planning


def collecting_logger(trt: types.ModuleType, log: backends.BuildLog) -> Any:
    """An ILogger that copies every message into the build log and remembers the errors."""

    class CollectingLogger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if severity == trt.ILogger.Severity.VERBOSE:
                return
            log.write(f"[{severity.name}] {msg}")
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                self.errors.append(msg)

    return CollectingLogger()


class TensorRTFamilyBuilder:
    """Parse ONNX into a strongly typed network, add profiles, build, write the plan."""

    backend: keys.Backend
    artifact_suffix = ".plan"

    def __init__(self, trt: types.ModuleType) -> None:
        self.trt = trt

    @property
    def version(self) -> str:
        return str(self.trt.__version__)

    def central(self) -> planning.CentralBuilder | None:
        raise NotImplementedError

    def configure_target(self, config: Any, *, key: keys.BuildKey, log: backends.BuildLog) -> None:
        raise NotImplementedError

    def _parse(self, *, model: onnx.ModelProto, logger: Any) -> tuple[Any, Any, Any]:
        trt = self.trt
        builder = trt.Builder(logger)
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(model.SerializeToString()):
            self._raise_parse_error(parser, model=model, logger=logger)
        return builder, network, parser

    def _raise_parse_error(self, parser: Any, *, model: onnx.ModelProto, logger: Any) -> None:
        trt = self.trt
        if parser.num_errors == 0:
            detail = logger.errors[-1] if logger.errors else "no detail"
            raise errors.BuildFailed(
                f"{self.backend.value} {self.version} could not parse the model: {detail}"
            )
        error = parser.get_error(0)
        index = int(error.node())
        node = str(error.node_name()) or (
            model.graph.node[index].name if 0 <= index < len(model.graph.node) else ""
        )
        op_type = str(error.node_operator()) or (
            model.graph.node[index].op_type if 0 <= index < len(model.graph.node) else ""
        )
        if error.code() in (trt.ErrorCode.UNSUPPORTED_NODE, trt.ErrorCode.INVALID_NODE) and op_type:
            raise errors.UnsupportedOperator(
                backend=f"{self.backend.value} {self.version}",
                node=node or f"#{index}",
                op_type=op_type,
                detail=str(error.desc()),
            )
        raise errors.BuildFailed(
            f"{self.backend.value} {self.version} could not parse the model at node"
            f" {node or index!r} ({op_type or 'unknown op'}): {error.desc()}. Check that the"
            " model runs in ONNX Runtime, then re-export it"
        )

    def build(
        self,
        *,
        model: onnx.ModelProto,
        info: intake.ModelInfo,
        key: keys.BuildKey,
        out_path: Path,
        log: backends.BuildLog,
    ) -> None:
        trt = self.trt
        logger = collecting_logger(trt, log)
        builder, network, _parser = self._parse(model=model, logger=logger)
        config = builder.create_builder_config()
        self.configure_target(config, key=key, log=log)
        if key.workspace_bytes is not None:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, key.workspace_bytes)
        if key.profiles:
            profile = builder.create_optimization_profile()
            for shape in key.profiles:
                profile.set_shape(shape.input, shape.min, shape.opt, shape.max)
            config.add_optimization_profile(profile)
        log.write(f"building {key.describe()} for {len(info.inputs)} input(s)")
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            detail = "; ".join(logger.errors[-3:]) or "the builder returned no engine"
            raise errors.BuildFailed(
                f"{self.backend.value} {self.version} could not build {key.describe()}: {detail}."
                " Try another precision or target, or allow another backend"
            )
        with out_path.open("wb") as handle:
            handle.write(memoryview(plan))
