"""`edgewave compile`: build one engine locally, to debug a model before rolling it out.

It runs the same intake, precision conversion, backend and cache as the operator, so a
model that compiles here compiles in the cluster (for the same toolchain version), and a
model that fails here fails there with the same one-line message.
"""

from __future__ import annotations

import enum
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from typing import Any

    from edgewave_compiler import cache, keys


class BackendName(enum.StrEnum):
    TENSORRT_RTX = "tensorrt-rtx"
    TENSORRT = "tensorrt"
    ONNXRUNTIME = "onnxruntime"


class PrecisionName(enum.StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"


def register(app: typer.Typer) -> None:
    app.command("compile")(compile_model)


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgewave" / "engines"


def compile_model(
    model: Annotated[
        str, typer.Argument(help="ONNX file path, or a file://, http:// or https:// URI.")
    ],
    *,
    backend: Annotated[BackendName, typer.Option(help="Engine backend.", case_sensitive=False)] = (
        BackendName.TENSORRT_RTX
    ),
    sm: Annotated[
        str | None,
        typer.Option(help="Target compute capability (86, 8.6 or sm86); TensorRT backends only."),
    ] = None,
    precision: Annotated[
        PrecisionName, typer.Option(help="Engine precision.", case_sensitive=False)
    ] = PrecisionName.FP32,
    profile: Annotated[
        list[str] | None,
        typer.Option(
            help="Shape range of a dynamic input, INPUT:MIN:OPT:MAX with dims joined by x,"
            " e.g. images:1x3x224x224:8x3x224x224:16x3x224x224. Repeat per input.",
        ),
    ] = None,
    workspace_mib: Annotated[
        int | None, typer.Option(min=1, help="Builder scratch memory limit in MiB.")
    ] = None,
    sha256: Annotated[
        str | None,
        typer.Option(help="Expected sha256 of the model (required for http(s) URIs)."),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Directory for the engine and its metadata.", file_okay=False)
    ] = Path(),
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache", help="Engine cache directory [default: ~/.cache/edgewave/engines]."
        ),
    ] = None,
) -> None:
    """Build one engine from an ONNX model and print its digest, size and build time."""
    import asyncio

    from edgewave_compiler import cache, compiling, intake

    target = _target(backend=backend, sm=sm, precision=precision, profiles=profile or [])
    root = (cache_dir or _default_cache()).resolve()
    model_path = _fetch(model, sha256=sha256, models_dir=root / "models")
    info = intake.inspect(model_path)
    for tensor in info.inputs:
        typer.echo(f"input   {tensor.describe()}", err=True)
    for tensor in info.outputs:
        typer.echo(f"output  {tensor.describe()}", err=True)
    key = target.model_copy(
        update={
            "model_sha256": info.sha256,
            "workspace_bytes": None
            if workspace_mib is None or not target.backend.needs_gpu
            else workspace_mib << 20,
        }
    )
    engines = cache.EngineCache(root)
    compiler = compiling.Compiler(engines, max_workers=1)
    record = asyncio.run(_with_progress(compiler.ensure_engine(key, model_path), key.describe()))
    _emit(record, out=out, name=Path(model).stem or "model")


def _fetch(model: str, *, sha256: str | None, models_dir: Path) -> Path:
    from edgewave_compiler import errors, fetching, intake

    if "://" in model:
        if sha256 is None:
            raise errors.PermanentError(
                f"{model} is a URI: pass --sha256 with the model's expected digest"
            )
        return fetching.fetch(model, sha256=sha256, dest_dir=models_dir, policy=fetching.LOCAL_USER)
    path = Path(model)
    if not path.is_file():
        raise errors.ModelNotFound(f"model file {path} does not exist: check the path")
    if sha256 is not None:
        return fetching.fetch(
            path.resolve().as_uri(), sha256=sha256, dest_dir=models_dir, policy=fetching.LOCAL_USER
        )
    return intake.copy_into(path, dest_dir=models_dir)


def _target(
    *, backend: BackendName, sm: str | None, precision: PrecisionName, profiles: list[str]
) -> keys.BuildKey:
    """The build key for these options, checked before any file is read (model digest TBD)."""
    from edgewave_compiler import backends, errors, keys, planning

    chosen = keys.Backend.parse(backend.value)
    try:
        parsed = tuple(keys.ShapeProfile.parse(text) for text in profiles)
        cc = None if sm is None else keys.normalize_compute_capability(sm)
    except ValueError as error:
        raise errors.PermanentError(str(error).splitlines()[-1].strip()) from None
    wanted = keys.Precision(precision.value.upper())
    if chosen.needs_gpu and cc is None:
        raise errors.PermanentError(f"--backend {backend.value} needs --sm, e.g. --sm 86")
    if not chosen.needs_gpu:
        # ONNX Runtime handles dynamic shapes itself and has no compute capability.
        cc, parsed = None, ()
        if wanted in (keys.Precision.FP16, keys.Precision.BF16):
            typer.echo("note: ONNX Runtime on CPU builds FP32 for FP16/BF16 requests", err=True)
    builder = backends.load(chosen)
    return keys.BuildKey(
        model_sha256="0" * 64,
        backend=chosen,
        backend_version=builder.version,
        compute_capability=cc,
        precision=planning.effective_precision(chosen, wanted),
        profiles=parsed,
    )


async def _with_progress(
    work: Coroutine[Any, Any, cache.EngineRecord], label: str
) -> cache.EngineRecord:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("building {task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        progress.add_task(label, total=None)
        return await work


def _emit(record: cache.EngineRecord, *, out: Path, name: str) -> None:
    assert record.engine_path is not None
    out.mkdir(parents=True, exist_ok=True)
    target = record.key.compute_capability or record.key.hardware_compatibility.value.lower()
    stem = (
        f"{name}-{record.key.backend.value.lower()}-{target}-{record.key.precision.value.lower()}"
    )
    if record.key.backend.value == "ONNXRuntime":
        stem = f"{name}-onnxruntime-{record.key.precision.value.lower()}"
    engine = out / f"{stem}{record.engine_path.suffix}"
    shutil.copyfile(record.engine_path, engine)
    (out / f"{stem}.json").write_text(record.model_dump_json(indent=2))
    how = "cached" if record.cache_hit else "built"
    typer.echo(f"engine  {engine}")
    typer.echo(f"digest  sha256:{record.engine_digest}")
    typer.echo(f"size    {record.size_bytes} bytes")
    typer.echo(f"build   {record.build_seconds:.2f} s ({how})")
    typer.echo(f"key     {record.key.describe()} ({record.key_digest[:16]})")
