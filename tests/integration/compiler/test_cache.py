"""The engine cache: build once across processes, LRU eviction that spares pinned engines."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from edgewave_compiler import building, cache, errors, keys

SHA = "5e" * 32


def key(n: int) -> keys.BuildKey:
    return keys.BuildKey(
        model_sha256=SHA, backend=keys.Backend.ONNXRUNTIME, backend_version=f"1.{n}.0"
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def builder(size: int, calls: list[Path]) -> Callable[[Path], building.BuildOutput]:
    """A stand-in build that writes `size` bytes into the staging directory it is given."""

    def build(staging: Path) -> building.BuildOutput:
        calls.append(staging)
        artifact = staging / "engine.onnx"
        artifact.write_bytes(b"e" * size)
        return building.BuildOutput(
            artifact=artifact, digest="d" * 64, size_bytes=size, build_seconds=0.5, log="fake"
        )

    return build


def test_get_or_build_builds_once_then_hits(tmp_path: Path) -> None:
    engines = cache.EngineCache(tmp_path)
    calls: list[Path] = []
    first = engines.get_or_build(key(1), builder(10, calls))
    second = engines.get_or_build(key(1), builder(10, calls))
    assert len(calls) == 1
    assert engines.builds == 1
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert second.engine_path == first.engine_path
    assert first.engine_path is not None and first.engine_path.read_bytes() == b"e" * 10
    assert not calls[0].exists()  # staging cleaned up
    stored = json.loads((tmp_path / "engines" / key(1).digest() / "meta.json").read_text())
    assert stored["key"]["backend_version"] == "1.1.0"
    assert stored["log"] == "fake"


def test_eviction_is_lru_and_skips_pinned_engines(tmp_path: Path) -> None:
    clock = Clock()
    engines = cache.EngineCache(tmp_path, clock=clock)
    calls: list[Path] = []
    for n in (1, 2, 3):
        clock.now += 10
        engines.get_or_build(key(n), builder(100, calls), rollout_uid="r-old" if n == 1 else None)
    clock.now += 10
    assert engines.lookup(key(2)) is not None  # 2 is now the most recently used
    # Over budget by 50 bytes: 1 is the oldest but pinned by a live rollout, so 3 goes.
    assert engines.evict(max_bytes=250) == [key(3).digest()]
    assert engines.lookup(key(3)) is None
    assert {r.key_digest for r in engines.entries()} == {key(1).digest(), key(2).digest()}
    # Once the rollout lets go, the oldest is evicted first.
    assert engines.release("r-old") == [key(1).digest()]
    assert engines.evict(max_bytes=150) == [key(1).digest()]
    assert [r.key_digest for r in engines.entries()] == [key(2).digest()]


def test_size_bound_applies_after_each_build(tmp_path: Path) -> None:
    clock = Clock()
    engines = cache.EngineCache(tmp_path, max_bytes=250, clock=clock)
    calls: list[Path] = []
    for n in (1, 2, 3):
        clock.now += 10
        engines.get_or_build(key(n), builder(100, calls))
    assert {r.key_digest for r in engines.entries()} == {key(2).digest(), key(3).digest()}
    assert engines.total_bytes() == 200


def test_eviction_skips_an_entry_another_process_holds(tmp_path: Path) -> None:
    engines = cache.EngineCache(tmp_path)
    calls: list[Path] = []
    engines.get_or_build(key(1), builder(100, calls))
    holder = cache.EngineCache(tmp_path)
    with holder.lock(key(1)):
        assert engines.evict(max_bytes=0) == []
    assert engines.evict(max_bytes=0) == [key(1).digest()]


def test_refs_and_agent_records(tmp_path: Path) -> None:
    engines = cache.EngineCache(tmp_path)
    calls: list[Path] = []
    engines.get_or_build(key(1), builder(10, calls), rollout_uid="uid-a")
    engines.add_ref(key(1), "uid-b")
    assert engines.references() == {key(1).digest(): frozenset({"uid-a", "uid-b"})}
    record = engines.record_agent_build(
        key(2), agent="jetson-7", engine_digest="f" * 64, size_bytes=5, build_seconds=1.5
    )
    assert record.built_on_agent == "jetson-7"
    assert record.engine_path is None
    again = engines.agent_build(key(2), agent="jetson-7")
    assert again is not None and again.engine_digest == "f" * 64
    assert engines.agent_build(key(2), agent="other") is None
    with pytest.raises(errors.PermanentError, match="cannot name a cache file"):
        engines.add_ref(key(1), "../escape")


WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from edgewave_compiler import building, cache, keys

    root, marker = Path(sys.argv[1]), Path(sys.argv[2])
    key = keys.BuildKey(model_sha256="5e" * 32, backend="ONNXRuntime", backend_version="1.0.0")

    def build(staging):
        with marker.open("a") as handle:
            handle.write("built\\n")
        time.sleep(0.5)  # long enough for the other process to arrive and wait on the lock
        artifact = staging / "engine.onnx"
        artifact.write_bytes(b"engine")
        return building.BuildOutput(
            artifact=artifact, digest="d" * 64, size_bytes=6, build_seconds=0.5, log=""
        )

    print("ready", flush=True)
    sys.stdin.readline()  # start together
    record = cache.EngineCache(root).get_or_build(key, build)
    print(json.dumps({"hit": record.cache_hit, "digest": record.engine_digest}), flush=True)
    """
)


def test_two_processes_asking_for_one_key_build_it_once(tmp_path: Path) -> None:
    marker = tmp_path / "builds.log"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path / "cache"), str(marker)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    results = []
    for process in processes:
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert marker.read_text() == "built\n"
    assert sorted(r["hit"] for r in results) == [False, True]
    assert {r["digest"] for r in results} == {"d" * 64}


def test_staging_of_dead_processes_is_swept(tmp_path: Path) -> None:
    clock = Clock()
    engines = cache.EngineCache(tmp_path, clock=clock)
    leftover = engines.staging_dir()
    (leftover / "engine.plan").write_bytes(b"half")
    assert engines.sweep_staging() == []  # young: may belong to a live build
    clock.now = leftover.stat().st_mtime + cache.STAGING_MAX_AGE_S + 1
    assert cache.EngineCache(tmp_path, clock=clock) is not None  # sweeps on open
    assert not leftover.exists()
