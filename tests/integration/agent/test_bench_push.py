"""A quick smoke run of bench/push_throughput.py (small artifact, one chunk size)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
BENCH = Path(__file__).resolve().parents[3] / "bench" / "push_throughput.py"


def test_push_throughput_bench_smoke() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--size-mib", "4", "--sweep", "", "--repeat", "1"],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(
        r"push_throughput ratio=\d+\.\d\d grpc_vs_socket=\d+\.\d\d chunk=1048576", last
    ), result.stdout
    assert "agent_push_peak_rss_above_idle_mib=" in result.stdout
    assert re.search(r"^push_cpu_per_gib agent=.* cpu_bound_ratio=\d+\.\d\d", result.stdout, re.M)
    assert re.search(
        r"^push_cpu_overhead ratio=\d+\.\d\d agent=\S+ bare_receive=\S+ sha256=\S+",
        result.stdout,
        re.M,
    ), result.stdout
