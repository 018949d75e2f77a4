"""The GPU machine check script runs without the heavy dependencies (its CPU half, here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_gpu_check_script_runs_its_light_path_on_the_cpu() -> None:
    result = subprocess.run(
        [str(REPO / "e2e" / "gpu" / "check.sh"), "--cpu"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for check in ("inventory", "fit", "inference"):
        assert any(line.startswith(f"PASS {check}:") for line in lines), result.stdout
    assert "answered y = [[0.25, 4.25, 12.25, 24.25]" in result.stdout
    assert lines[-1] == "OK: 3 of 3 checks passed"
