"""After a push, the agent gives the memory malloc kept back to the system."""

from __future__ import annotations

import subprocess
import sys

import pytest

# 100 MiB freed in blocks malloc keeps in its heap (the heap's top stays in use, so free()
# alone cannot shrink it), then release_free_memory: RSS in MiB before and after.
_PROBE = """
import sys, psutil
from edgewave_agent import memory
rss = lambda: psutil.Process().memory_info().rss >> 20
blocks = [bytes(64 << 10) for _ in range(1600)]
keep = blocks[-1]
del blocks
before = rss()
if not memory.release_free_memory():
    sys.exit(3)
print(before, rss())
"""


def test_free_memory_goes_back_to_the_system() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=False
    )
    if result.returncode == 3:
        pytest.skip("not glibc: there is no malloc_trim, and freed memory stays with malloc")
    assert result.returncode == 0, result.stderr
    before, after = map(int, result.stdout.split())
    assert before - after >= 50, (before, after)


# 6 MiB of 1 MiB chunks freed at the top of the heap (as a push's written chunks are):
# with the agent's thresholds malloc keeps them for the next chunks instead of giving the
# pages back and faulting them in again; release_free_memory still gives them back.
_REUSE_PROBE = """
import sys, psutil
from edgewave_agent import memory
if sys.argv[1] == "tuned" and not memory.reuse_freed_memory(largest_message=16 << 20):
    sys.exit(3)
rss = lambda: psutil.Process().memory_info().rss >> 20
warm = [bytearray(1 << 20) for _ in range(6)]
del warm
start = rss()
for _ in range(20):
    chunks = [bytearray(1 << 20) for _ in range(6)]
    del chunks
kept = rss()
memory.release_free_memory()
print(kept - start, kept - rss())
"""


def _run_reuse_probe(mode: str) -> tuple[int, int]:
    result = subprocess.run(
        [sys.executable, "-c", _REUSE_PROBE, mode], capture_output=True, text=True, check=False
    )
    if result.returncode == 3:
        pytest.skip("not glibc: there is no mallopt")
    assert result.returncode == 0, result.stderr
    grown, released = map(int, result.stdout.split())
    return grown, released


def test_freed_chunks_stay_for_reuse_until_released() -> None:
    tuned_grown, tuned_released = _run_reuse_probe("tuned")
    # Kept for reuse (not given back and faulted in again), bounded, then given back.
    assert tuned_grown <= 8, tuned_grown
    assert tuned_released >= 4, tuned_released
    _, default_released = _run_reuse_probe("default")
    # glibc's own thresholds give most of them back at once: nothing left to release.
    assert default_released < tuned_released, (default_released, tuned_released)
