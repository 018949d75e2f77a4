"""Builds for the operator: off the event loop, bounded, deduplicated and cancellable.

`Compiler.ensure_engine(key, model_path)` returns the cached engine or builds it. Each build
runs in its own worker process (`python -m edgewave_compiler.worker`, a new session), at
most `max_workers` at a time, so a slow or crashing toolchain never blocks or kills the
operator. Concurrent requests for one key, in this process or another, share one build:
in-process through a shared task, across processes through the cache's per-key file lock.
Cancelling every waiter of a build (the rollout was superseded or deleted) kills its worker
process group; the build log (worker stderr included) goes into the engine's metadata.
Workers start in an empty private working directory (`workdirs`), removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

from edgewave_api.errors import EdgewaveError
from edgewave_compiler import building, cache, errors, fetching, keys, workdirs, worker

LOCK_POLL_SECONDS = 0.05


class Compiler:
    def __init__(
        self,
        engine_cache: cache.EngineCache,
        *,
        max_workers: int = 2,
        build_timeout_s: float | None = None,
        python: str = sys.executable,
        fetch_policy: fetching.FetchPolicy | None = None,
    ) -> None:
        self.cache = engine_cache
        self.fetch_policy = fetch_policy or fetching.FetchPolicy()
        self.python = python
        self.build_timeout_s = build_timeout_s
        self._slots = asyncio.Semaphore(max_workers)
        self._inflight: dict[str, asyncio.Task[cache.EngineRecord]] = {}
        self._waiters: dict[str, int] = {}
        self._processes: set[asyncio.subprocess.Process] = set()
        self.workers_started = 0
        """Worker processes this compiler started (one per build it ran)."""

    async def ensure_engine(
        self,
        key: keys.BuildKey,
        model_path: Path,
        *,
        rollout_uid: str | None = None,
    ) -> cache.EngineRecord:
        """The engine for `key` from the cache, or built from `model_path` once.

        `rollout_uid` pins the engine against eviction until `cache.release(uid)`.
        Cancelling the caller cancels the build when no other caller still waits for it.
        """
        record = await asyncio.to_thread(self.cache.lookup, key, rollout_uid=rollout_uid)
        if record is not None:
            return record
        digest = key.digest()
        task = self._inflight.get(digest)
        if task is None:
            task = asyncio.create_task(self._build(key, model_path), name=f"build-{digest[:12]}")
            self._inflight[digest] = task
            task.add_done_callback(lambda _: self._forget(digest, task))
        self._waiters[digest] = self._waiters.get(digest, 0) + 1
        cancelled = False
        try:
            record = await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            left = self._release_waiter(digest)
            if cancelled and left == 0 and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, EdgewaveError):
                    await task
        if rollout_uid is not None:
            await asyncio.to_thread(self.cache.add_ref, key, rollout_uid)
        return record

    async def fetch_model(self, uri: str, *, sha256: str, dest_dir: Path | None = None) -> Path:
        """The verified model file for `uri`, downloaded once (within `fetch_policy`) into
        `dest_dir` (default: the cache's models folder).

        Cancelling the caller (the rollout was superseded or deleted) stops the download at
        its next chunk and removes what it wrote; this returns once the download thread ended.
        """
        cancel = threading.Event()
        download = asyncio.ensure_future(
            asyncio.to_thread(
                fetching.fetch,
                uri,
                sha256=sha256,
                dest_dir=dest_dir or self.cache.root / "models",
                policy=self.fetch_policy,
                cancel=cancel,
            )
        )
        try:
            return await asyncio.shield(download)
        except asyncio.CancelledError:
            cancel.set()
            with contextlib.suppress(EdgewaveError, asyncio.CancelledError):
                await download
            raise

    def _release_waiter(self, digest: str) -> int:
        left = self._waiters.get(digest, 0) - 1
        if left <= 0:
            self._waiters.pop(digest, None)
            return 0
        self._waiters[digest] = left
        return left

    def _forget(self, digest: str, task: asyncio.Task[cache.EngineRecord]) -> None:
        if self._inflight.get(digest) is task:
            del self._inflight[digest]

    async def _lock(self, key: keys.BuildKey) -> cache.KeyLock:
        # Non-blocking attempts on the loop thread: a lock taken in a worker thread could be
        # orphaned by a cancellation, and a blocking flock cannot be cancelled at all.
        digest = key.digest()
        while True:
            held = self.cache.try_lock(digest)
            if held is not None:
                return held
            await asyncio.sleep(LOCK_POLL_SECONDS)

    async def _build(self, key: keys.BuildKey, model_path: Path) -> cache.EngineRecord:
        digest = key.digest()
        with await self._lock(key):
            record = self.cache.read(digest)
            if record is not None:
                return record.model_copy(update={"cache_hit": True})
            staging = self.cache.staging_dir()
            try:
                async with self._slots:
                    output = await self._run_worker(key=key, model_path=model_path, out_dir=staging)
                # Quick renames and small writes, kept on this thread so a cancellation
                # cannot release the lock while they are half done.
                record = self.cache.store(key, output)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        await asyncio.to_thread(self.cache.enforce_bound, keep=frozenset({digest}))
        return record

    async def _run_worker(
        self, *, key: keys.BuildKey, model_path: Path, out_dir: Path
    ) -> building.BuildOutput:
        request = worker_request(key=key, model_path=model_path, out_dir=out_dir)
        with workdirs.private_dir() as cwd:
            return await self._run_worker_in(key=key, request=request, cwd=cwd)

    async def _run_worker_in(
        self, *, key: keys.BuildKey, request: dict[str, object], cwd: Path
    ) -> building.BuildOutput:
        process = await asyncio.create_subprocess_exec(
            self.python,
            "-m",
            "edgewave_compiler.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            cwd=cwd,
        )
        self.workers_started += 1
        self._processes.add(process)
        try:
            async with asyncio.timeout(self.build_timeout_s):
                stdout, stderr = await process.communicate(json.dumps(request).encode())
        except (asyncio.CancelledError, TimeoutError) as stopped:
            _kill(process)
            # Drain to EOF so the pipes close now rather than at garbage collection.
            await process.communicate()
            if isinstance(stopped, TimeoutError):
                raise errors.BuildCrashed(
                    f"the {key.describe()} build ran past {self.build_timeout_s:g}s and was"
                    " stopped; it will be retried. Raise the build timeout for large models"
                ) from None
            raise
        finally:
            self._processes.discard(process)
        return parse_worker_output(
            stdout=stdout.decode(errors="replace"),
            stderr=stderr.decode(errors="replace"),
            returncode=process.returncode,
            key=key,
        )

    async def close(self) -> None:
        """Kill running workers and cancel in-flight builds (operator shutdown)."""
        for task in list(self._inflight.values()):
            task.cancel()
        for process in list(self._processes):
            _kill(process)
        for task in list(self._inflight.values()):
            with contextlib.suppress(asyncio.CancelledError, EdgewaveError):
                await task

    @property
    def running_workers(self) -> tuple[int, ...]:
        """PIDs of build workers running now."""
        return tuple(p.pid for p in self._processes if p.returncode is None)


def worker_request(*, key: keys.BuildKey, model_path: Path, out_dir: Path) -> dict[str, object]:
    """The worker's JSON request; absolute paths, since the worker starts elsewhere."""
    return {
        "key": key.model_dump(mode="json"),
        "model_path": str(model_path.resolve()),
        "out_dir": str(out_dir.resolve()),
    }


def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def parse_worker_output(
    *, stdout: str, stderr: str, returncode: int | None, key: keys.BuildKey
) -> building.BuildOutput:
    """The worker's result line as a BuildOutput, or its typed error raised here."""
    result: dict[str, object] | None = None
    for line in reversed(stdout.splitlines()):
        if line.startswith(worker.RESULT_PREFIX):
            result = json.loads(line.removeprefix(worker.RESULT_PREFIX))
            break
    if result is None:
        tail = " | ".join(stderr.strip().splitlines()[-3:]) or "no output"
        raise errors.BuildCrashed(
            f"the {key.describe()} build worker exited with status {returncode} without a"
            f" result ({tail}); will retry. If it repeats, check the operator's memory limit"
        )
    if not result.get("ok"):
        error = result.get("error")
        raise errors.from_wire(error if isinstance(error, dict) else {})
    log = str(result.get("log", ""))
    if stderr.strip():
        log = f"{log}\n--- worker stderr ---\n{stderr.strip()}"
    toolchain = result.get("toolchain")
    return building.BuildOutput(
        artifact=Path(str(result["artifact"])),
        digest=str(result["digest"]),
        size_bytes=int(str(result["size_bytes"])),
        build_seconds=float(str(result["build_seconds"])),
        log=log,
        toolchain={str(k): str(v) for k, v in toolchain.items()}
        if isinstance(toolchain, dict)
        else {},
    )
