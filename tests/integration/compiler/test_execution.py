"""Build execution: worker processes, one build per key in a process, cancellation kills.

A build that runs long enough to cancel is simulated by pointing the compiler at a stand-in
interpreter (a shell script that records its PID, starts a child and waits), so the test
proves the whole worker process group dies without waiting minutes for a real build.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import onnxruntime
import psutil
import pytest

from edgewave_compiler import cache, compiling, errors, fetching, keys, samples

SHA = "7a" * 32


def key(sha: str = SHA) -> keys.BuildKey:
    return keys.BuildKey(
        model_sha256=sha, backend=keys.Backend.ONNXRUNTIME, backend_version=onnxruntime.__version__
    )


def slow_python(tmp_path: Path) -> Path:
    script = tmp_path / "slow-python"
    script.write_text(
        "#!/bin/sh\n"
        f"echo $$ > {tmp_path}/worker.pid\n"
        "sleep 300 &\n"
        f"echo $! > {tmp_path}/child.pid\n"
        "wait\n"
    )
    script.chmod(0o755)
    return script


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def pids(tmp_path: Path) -> tuple[int, int]:
    for _ in range(400):
        worker, child = tmp_path / "worker.pid", tmp_path / "child.pid"
        if worker.exists() and child.exists() and child.read_text().strip():
            return int(worker.read_text()), int(child.read_text())
        await asyncio.sleep(0.025)
    raise AssertionError("the stand-in worker never started")


async def settle(pid: int) -> bool:
    for _ in range(200):
        if gone(pid):
            return True
        await asyncio.sleep(0.025)
    return False


def test_cancelling_the_only_waiter_kills_the_build(tmp_path: Path) -> None:
    engines = cache.EngineCache(tmp_path / "cache")
    compiler = compiling.Compiler(engines, python=str(slow_python(tmp_path)))

    async def scenario() -> tuple[int, int]:
        task = asyncio.create_task(compiler.ensure_engine(key(), tmp_path / "m.onnx"))
        worker, child = await pids(tmp_path)
        assert compiler.running_workers == (worker,)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await settle(worker) and await settle(child)
        return worker, child

    asyncio.run(scenario())
    assert compiler.running_workers == ()
    assert engines.entries() == []
    held = engines.try_lock(key().digest())  # the build's lock was released
    assert held is not None
    held.release()
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_a_build_lives_while_any_waiter_remains(tmp_path: Path) -> None:
    compiler = compiling.Compiler(
        cache.EngineCache(tmp_path / "cache"), python=str(slow_python(tmp_path))
    )

    async def scenario() -> None:
        first = asyncio.create_task(compiler.ensure_engine(key(), tmp_path / "m.onnx"))
        second = asyncio.create_task(compiler.ensure_engine(key(), tmp_path / "m.onnx"))
        worker, _ = await pids(tmp_path)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.sleep(0.2)
        assert not gone(worker), "cancelling one of two waiters must not kill the build"
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        assert await settle(worker)

    asyncio.run(scenario())
    assert compiler.workers_started == 1


def test_close_kills_running_builds(tmp_path: Path) -> None:
    compiler = compiling.Compiler(
        cache.EngineCache(tmp_path / "cache"), python=str(slow_python(tmp_path))
    )

    async def scenario() -> None:
        task = asyncio.create_task(compiler.ensure_engine(key(), tmp_path / "m.onnx"))
        worker, child = await pids(tmp_path)
        await compiler.close()
        assert await settle(worker) and await settle(child)
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_a_crashed_worker_is_a_temporary_error_with_its_stderr(tmp_path: Path) -> None:
    script = tmp_path / "crashing-python"
    script.write_text("#!/bin/sh\necho 'Segmentation fault in the builder' >&2\nexit 139\n")
    script.chmod(0o755)
    compiler = compiling.Compiler(cache.EngineCache(tmp_path / "cache"), python=str(script))
    with pytest.raises(errors.BuildCrashed, match=r"status 139.*Segmentation fault") as caught:
        asyncio.run(compiler.ensure_engine(key(), tmp_path / "m.onnx"))
    assert caught.value.temporary


def test_concurrent_requests_in_one_process_share_one_build(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(samples.matmul_relu().SerializeToString())
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    engines = cache.EngineCache(tmp_path / "cache")
    compiler = compiling.Compiler(engines, max_workers=2)

    async def scenario() -> list[cache.EngineRecord]:
        return await asyncio.gather(
            *(compiler.ensure_engine(key(sha), model, rollout_uid=f"r{i}") for i in range(3))
        )

    records = asyncio.run(scenario())
    assert compiler.workers_started == 1
    assert engines.builds == 1
    assert len({r.engine_digest for r in records}) == 1
    assert engines.references() == {key(sha).digest(): frozenset({"r0", "r1", "r2"})}


def test_a_build_past_its_timeout_is_killed(tmp_path: Path) -> None:
    compiler = compiling.Compiler(
        cache.EngineCache(tmp_path / "cache"),
        python=str(slow_python(tmp_path)),
        build_timeout_s=1.5,
    )

    async def scenario() -> None:
        task = asyncio.create_task(compiler.ensure_engine(key(), tmp_path / "m.onnx"))
        worker, child = await pids(tmp_path)
        with pytest.raises(errors.BuildCrashed, match=r"ran past 1\.5s") as caught:
            await task
        assert caught.value.temporary
        assert await settle(worker) and await settle(child)

    asyncio.run(scenario())


def test_fetch_model_lands_in_the_cache(tmp_path: Path) -> None:
    source = tmp_path / "m.onnx"
    source.write_bytes(samples.matmul_relu().SerializeToString())
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    compiler = compiling.Compiler(
        cache.EngineCache(tmp_path / "cache"), fetch_policy=fetching.FetchPolicy(file_root=tmp_path)
    )
    path = asyncio.run(compiler.fetch_model(source.as_uri(), sha256=sha))
    models = tmp_path / "cache" / "models"
    assert path == fetching.model_file(models, uri=source.as_uri(), sha256=sha)
