"""A quick smoke run of bench/link_goodput.py (1 MiB over 50 Mbit/s namespace links)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.network]
BENCH = Path(__file__).resolve().parents[3] / "bench" / "link_goodput.py"


def test_link_goodput_bench_smoke(netns_ready: None) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--size-mib", "1", "--mbit", "50"],
        capture_output=True, text=True, check=False, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"link_goodput ratio=\d+\.\d{3} link_mbit=50", last), result.stdout
    assert re.search(
        r"^link_goodput detail .*upload_ratio=\S+ deliver_ratio=\S+", result.stdout, re.M
    )
