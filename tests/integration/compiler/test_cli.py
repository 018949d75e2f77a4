"""`edgewave compile` as people run it: a subprocess, its output lines and its exit code."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from edgewave_compiler import backends, keys, samples
from edgewave_operator import cli

CLI = [sys.executable, "-c", "from edgewave_operator.cli import main; main()", "compile"]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "resnet-ish.onnx"
    path.write_bytes(samples.matmul_relu().SerializeToString())
    return path


def fields(stdout: str) -> dict[str, str]:
    return dict(line.split(maxsplit=1) for line in stdout.strip().splitlines())


def test_onnxruntime_build_then_cached(model: Path, tmp_path: Path) -> None:
    out, cache_dir = tmp_path / "out", tmp_path / "cache"
    first = run(model, "--backend", "onnxruntime", "--out", out, "--cache", cache_dir)
    assert first.returncode == 0, first.stderr
    printed = fields(first.stdout)
    engine = Path(printed["engine"])
    assert engine.parent == out and engine.suffix == ".onnx"
    assert printed["digest"] == "sha256:" + hashlib.sha256(engine.read_bytes()).hexdigest()
    assert printed["size"] == f"{engine.stat().st_size} bytes"
    assert printed["build"].endswith("(built)")
    assert "input   x: FLOAT[Nx8]" in first.stderr
    second = run(model, "--backend", "onnxruntime", "--out", out, "--cache", cache_dir)
    assert second.returncode == 0, second.stderr
    assert fields(second.stdout)["build"].endswith("(cached)")
    assert fields(second.stdout)["digest"] == printed["digest"]


def test_tensorrt_rtx_fp16_for_sm86(model: Path, tmp_path: Path) -> None:
    # A pinned dependency on this platform: a toolchain that does not load fails here.
    backends.load(keys.Backend.TENSORRT_RTX)
    result = run(
        model, "--backend", "tensorrt-rtx", "--sm", "86", "--precision", "fp16",
        "--profile", "x:1x8:4x8:16x8", "--out", tmp_path / "out", "--cache", tmp_path / "cache",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = fields(result.stdout)
    assert Path(printed["engine"]).name == "resnet-ish-tensorrtrtx-8.6-fp16.plan"
    assert printed["key"].startswith("TensorRTRTX ")
    assert " sm8.6 FP16 " in printed["key"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--backend", "onnxruntime", "--sha256", "0" * 64), "spec.model.sha256 names (0000"),
        (("--backend", "tensorrt-rtx", "--sm", "86"), "--profile x:1x8:4x8:16x8"),
        (("--backend", "tensorrt-rtx"), "needs --sm, e.g. --sm 86"),
        (("--backend", "tensorrt-rtx", "--sm", "ampere"), "write it as 8.6, 86 or sm86"),
        (("--backend", "onnxruntime", "--profile", "x:1"), "write INPUT:MIN:OPT:MAX"),
    ],
    ids=["wrong-sha256", "no-profile", "no-sm", "bad-sm", "bad-profile"],
)
def test_errors_are_one_line_and_exit_1(
    model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *,
    args: tuple[str, ...],
    words: str,
) -> None:
    # In-process through the same entry point as the binary (the subprocess test below
    # covers the installed command); it saves an interpreter start per case.
    argv = ["edgewave", "compile", str(model), *args, "--out", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", [*argv, "--cache", str(tmp_path / "cache")])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    captured = capsys.readouterr()
    error_lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, captured.err
    assert words in error_lines[0]
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    result = run(tmp_path / "nope.onnx", "--backend", "onnxruntime", "--cache", tmp_path / "c")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: model file {tmp_path / 'nope.onnx'} does not exist: check the path"
    ]
