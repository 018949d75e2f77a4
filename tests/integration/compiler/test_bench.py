"""bench/compile_plan.py runs, and its dedupe line says one build per key (fake builds)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from edgewave_compiler import backends, keys

BENCH = Path(__file__).resolve().parents[3] / "bench" / "compile_plan.py"


def test_compile_plan_bench_dedupes(tmp_path: Path) -> None:
    # The bench plans TensorRT-RTX builds; the toolchain is pinned, so it must load here.
    backends.load(keys.Backend.TENSORRT_RTX)
    result = subprocess.run(
        [sys.executable, str(BENCH), "--fake-build", "--agents", "200"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "compile_dedupe builds=5 expected=5"
    assert re.search(r"second_plan_builds=0 .* fake instant builds", lines[1])
