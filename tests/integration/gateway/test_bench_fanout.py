"""A quick smoke run of bench/fanout.py (2 regions x 2 agents, a 1 MiB engine)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
BENCH = Path(__file__).resolve().parents[3] / "bench" / "fanout.py"


def test_fanout_bench_smoke() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--regions", "2", "--agents-per-region", "2",
         "--engine-mib", "1"],
        capture_output=True, text=True, check=False, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"fanout central_bytes_per_engine=(\d+\.\d{3}) regions=2 agents=4", last)
    assert match, result.stdout
    # One upload per gateway: nothing else leaves the "operator".
    assert float(match.group(1)) == 2.0
