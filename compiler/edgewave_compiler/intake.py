"""Model intake: load and check a model whose sha256 was verified when it was fetched.

Nothing parses a byte before the digest matches the spec (`fetching` verifies it while it
streams the model into a content-addressed directory), so a wrong or tampered file is
refused as such rather than surfacing as a confusing parse error. `load` refuses a model
any tensor of which names an external file (`externaldata`): a model never makes Edgewave
read a file.

`inspect` runs the ONNX checker and shape inference and lists inputs and outputs with their
dtypes and dynamic dimensions; `check_profiles` says which dynamic input lacks a profile.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx.checker
import onnx.defs
import onnx.shape_inference
from google.protobuf.message import DecodeError

from edgewave_compiler import errors, externaldata, keys

CHUNK_BYTES = 1 << 20
MIN_OPSET = 9
"""The oldest default-domain opset the backends' ONNX importers accept."""

Dim = int | str | None
"""A static size, a symbolic name (dynamic) or None (unknown, also dynamic)."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    """ONNX element type name: FLOAT, FLOAT16, INT64, ..."""
    shape: tuple[Dim, ...]

    @property
    def dynamic_dims(self) -> tuple[int, ...]:
        return tuple(i for i, dim in enumerate(self.shape) if not isinstance(dim, int))

    def describe(self) -> str:
        dims = "x".join("?" if d is None else str(d) for d in self.shape) or "scalar"
        return f"{self.name}: {self.dtype}[{dims}]"


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    sha256: str
    size_bytes: int
    ir_version: int
    opset: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    op_types: frozenset[tuple[str, str]]
    """(domain, op_type) of every node in the main graph."""

    @property
    def is_quantized(self) -> bool:
        """Whether the model carries Q/DQ nodes (pre-quantized for INT8)."""
        return any(op in ("QuantizeLinear", "DequantizeLinear") for _, op in self.op_types)


def _sniff(head: bytes) -> str:
    stripped = head.lstrip()
    if stripped[:1] in (b"<",):
        return " (it looks like HTML or XML: a login or error page instead of the model?)"
    if stripped[:1] in (b"{", b"["):
        return " (it looks like JSON)"
    if head[:2] == b"PK":
        return " (it looks like a zip archive: unpack it and point uri at the .onnx file)"
    if head[:2] == b"\x1f\x8b":
        return " (it looks gzip-compressed: decompress it first)"
    return ""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _dims(value_info: onnx.ValueInfoProto) -> tuple[Dim, ...]:
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return ()
    dims: list[Dim] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(str(dim.dim_param))
        else:
            dims.append(None)
    return tuple(dims)


def _tensor(value_info: onnx.ValueInfoProto) -> TensorInfo:
    elem = value_info.type.tensor_type.elem_type
    return TensorInfo(
        name=value_info.name,
        dtype=onnx.TensorProto.DataType.Name(elem),
        shape=_dims(value_info),
    )


def load(path: Path) -> onnx.ModelProto:
    """Parse an ONNX file; bytes that are not a complete model raise `InvalidModel`."""
    data = path.read_bytes()
    try:
        model = onnx.load_model_from_string(data)
    except DecodeError:
        raise errors.InvalidModel(
            f"{path.name} ({len(data)} bytes) is not a complete ONNX model: the file is truncated"
            f" or another format{_sniff(data[:64])}. Re-export or re-upload the model and set"
            " spec.model.sha256 to the new file's digest"
        ) from None
    if model.ir_version == 0 or not model.HasField("graph") or not model.graph.node:
        raise errors.InvalidModel(
            f"{path.name} ({len(data)} bytes) parses but holds no ONNX graph (ir_version"
            f" {model.ir_version}, {len(model.graph.node)} nodes){_sniff(data[:64])}: it is"
            " truncated or not an ONNX model. Re-export it"
        )
    check_no_external_data(model, name=path.name)
    return model


def check_no_external_data(model: onnx.ModelProto, *, name: str) -> None:
    """Refuse a model any of whose tensors names an external file (see `externaldata`).

    Called on every parse, before the checker, shape inference or a backend sees the model:
    each of those would resolve the path against the working directory and read the file.
    """
    found = externaldata.find(model)
    if found is not None:
        raise errors.InvalidModel(
            f"{name}: {found.describe()}; Edgewave never reads files a model names, and a"
            " single uri cannot carry them: save the model with every tensor embedded"
            " (onnx.save(model, path, save_as_external_data=False))"
        )


def _default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def inspect(path: Path, *, sha256: str | None = None) -> ModelInfo:
    """Load, check and shape-infer a verified model file, and describe its inputs and outputs."""
    return inspect_model(load(path), path=path, sha256=sha256)


def inspect_model(model: onnx.ModelProto, *, path: Path, sha256: str | None = None) -> ModelInfo:
    """Check and shape-infer a loaded model (see `inspect`)."""
    opset = _default_opset(model)
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise errors.UnsupportedOpset(
            f"{path.name} uses opset {opset} but this compiler's onnx {onnx.__version__} knows"
            f" opsets up to {newest}: re-export the model with opset {newest} or lower"
        )
    if opset < MIN_OPSET:
        raise errors.UnsupportedOpset(
            f"{path.name} uses opset {opset}, older than the oldest supported ({MIN_OPSET}):"
            f" convert it (onnx.version_converter.convert_version(model, {MIN_OPSET})) or"
            " re-export it"
        )
    try:
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise errors.InvalidModel(
            f"{path.name} fails the ONNX checker: {first}. Fix the export and re-upload it"
        ) from None
    initializers = {init.name for init in inferred.graph.initializer}
    return ModelInfo(
        path=path,
        sha256=sha256 or sha256_file(path),
        size_bytes=model.ByteSize(),
        ir_version=int(inferred.ir_version),
        opset=opset,
        inputs=tuple(_tensor(v) for v in inferred.graph.input if v.name not in initializers),
        outputs=tuple(_tensor(v) for v in inferred.graph.output),
        op_types=frozenset((node.domain or "", node.op_type) for node in inferred.graph.node),
    )


def _profile_hint(tensor: TensorInfo) -> str:
    def shape(dynamic: int) -> str:
        return "x".join(str(d) if isinstance(d, int) else str(dynamic) for d in tensor.shape)

    return f"--profile {tensor.name}:{shape(1)}:{shape(4)}:{shape(16)} (min:opt:max)"


def check_profiles(info: ModelInfo, profiles: Sequence[keys.ShapeProfile]) -> None:
    """Every dynamic input needs a profile; every profile must fit its input's static dims."""
    inputs = {tensor.name: tensor for tensor in info.inputs}
    for profile in profiles:
        tensor = inputs.get(profile.input)
        if tensor is None:
            known = ", ".join(sorted(inputs)) or "none"
            raise errors.InvalidShapeProfile(
                f"shape profile names input {profile.input!r}, which the model does not have"
                f" (inputs: {known}): fix spec.build.profiles"
            )
        if len(profile.min) != len(tensor.shape):
            raise errors.InvalidShapeProfile(
                f"shape profile for {tensor.name!r} has rank {len(profile.min)} but the input is"
                f" {tensor.describe()}: give one size per dimension"
            )
        for index, dim in enumerate(tensor.shape):
            if isinstance(dim, int) and not (
                profile.min[index] == profile.opt[index] == profile.max[index] == dim
            ):
                raise errors.InvalidShapeProfile(
                    f"shape profile for {tensor.name!r} sets dimension {index} to"
                    f" {profile.min[index]}/{profile.opt[index]}/{profile.max[index]} but the"
                    f" model fixes it at {dim}: use {dim} for min, opt and max"
                )
    covered = {profile.input for profile in profiles}
    for tensor in info.inputs:
        if tensor.dynamic_dims and tensor.name not in covered:
            index = tensor.dynamic_dims[0]
            name = tensor.shape[index]
            label = f" ({name!r})" if isinstance(name, str) else ""
            raise errors.MissingShapeProfile(
                f"input {tensor.name!r} ({tensor.describe()}) has dynamic dimension {index}{label}"
                " and no shape profile: add it to spec.build.profiles with min/opt/max, or on"
                f" the command line {_profile_hint(tensor)}"
            )


def copy_into(path: Path, *, dest_dir: Path) -> Path:
    """A verified copy of a local model in the content-addressed directory (for the CLI)."""
    digest = sha256_file(path)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / f"{digest}.onnx"
    if not final.exists():
        fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=".copy-", suffix=".part")
        os.close(fd)
        shutil.copyfile(path, tmp_name)
        Path(tmp_name).replace(final)
    return final
