"""Receiving one Push stream: order checks, hashing and writing behind the network.

Chunks are checked on the event loop (cheap) and written in order by one thread per push,
up to WRITE_AHEAD_BYTES behind the network, so hashing and disk writes overlap with
receiving while memory stays bounded whatever the chunk size. A broken stream leaves every
written byte durable for the resume; a rejected one is discarded or kept as the error
requires.

Receiving decides and reports in domain terms: the first chunk's outcome and the end of
the stream are `Received` results, refusals are `errors.AgentError`s; the servicer
(`service`) maps both to protobuf and statuses. Chunks are read through the `Chunk`
protocol, which the wire's in-place view (`pushwire.PushChunkView`) satisfies.

Each chunk is handed to the writing thread as it is accepted (so Stat's received offset
and the resume bound stay per chunk), through a queue that wakes the thread only when it is
idle and wakes the event loop only when it waits for room or for the end: a future and an
event-loop wake-up per chunk cost more CPU than hashing a small chunk.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edgewave_agent import errors, observers
from edgewave_agent.store import Store, Upload, validate_digest
from edgewave_api.telemetry import spans

# Bytes received but not yet written, per push: four chunks of the operator's 1 MiB. A chunk
# is always let in once nothing is outstanding, so larger chunks still flow, one at a time.
WRITE_AHEAD_BYTES = 4 << 20


class Chunk(Protocol):
    """One received chunk of a push (the first one also names the artifact)."""

    @property
    def digest(self) -> str: ...
    @property
    def total_size(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def data(self) -> memoryview: ...


@dataclass(frozen=True)
class Received:
    """Where a push stands when it ends (or, when already stored, before it starts)."""

    digest: str
    size_bytes: int
    complete: bool
    resumed_from: int
    verified_offset: int
    already_present: bool = False
    received_bytes: int = 0


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _WriteBehind:
    """One thread writing queued chunks in order; the event loop waits only when it must."""

    def __init__(self, write: Callable[[memoryview], None]) -> None:
        self._write = write
        self._lock = threading.Condition()
        self._queue: collections.deque[memoryview] = collections.deque()
        self._queued = 0  # bytes in the queue
        self._busy = 0  # bytes of the chunk taken off the queue and being written
        self._stopped = False
        self.error: BaseException | None = None
        # The event loop's wait: its future, its loop and the outstanding bytes that end it.
        self._waiter: tuple[asyncio.Future[None], asyncio.AbstractEventLoop, int] | None = None
        self._thread = threading.Thread(target=self._run, name="push-write", daemon=True)
        self._thread.start()

    def put(self, data: memoryview) -> None:
        with self._lock:
            self._raise_error()
            self._queue.append(data)
            self._queued += len(data)
            if len(self._queue) == 1 and not self._busy:
                self._lock.notify()

    async def wait_below(self, limit: int) -> None:
        """Until at most `limit` bytes are queued or being written; raises a write's error."""
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                self._raise_error()
                if self._queued + self._busy <= limit or self._stopped:
                    return
                waiter = loop.create_future()
                self._waiter = (waiter, loop, limit)
            await waiter

    def stop(self) -> None:
        """Write nothing more (the chunk being written, if any, completes)."""
        with self._lock:
            self._stopped = True
            self._queue.clear()
            self._queued = 0
            self._lock.notify()
            self._wake_locked()

    def _raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def _wake_locked(self) -> None:
        if self._waiter is None:
            return
        waiter, loop, limit = self._waiter
        if self.error is None and not self._stopped and self._queued + self._busy > limit:
            return
        self._waiter = None
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(_wake, waiter)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._busy = 0
                self._wake_locked()
                while not self._queue and not self._stopped:
                    self._lock.wait()
                if self._stopped:
                    return
                data = self._queue.popleft()
                self._queued -= len(data)
                self._busy = len(data)
            try:
                self._write(data)
                del data  # free the chunk now, not when the next one arrives
            except BaseException as error:
                with self._lock:
                    self.error = error
                    self._stopped = True
                    self._queue.clear()
                    self._queued = self._busy = 0
                    self._wake_locked()
                return


class Receiver:
    """The state of one Push stream: its upload and the write in flight."""

    def __init__(
        self,
        *,
        store: Store,
        quota_bytes: int,
        collect_garbage: Callable[[int], int],
        observer: observers.Observer,
    ) -> None:
        self._store = store
        self._quota_bytes = quota_bytes
        self._collect_garbage = collect_garbage
        self._observer = observer
        self.upload: Upload | None = None
        # Writes run in order on one thread, up to WRITE_AHEAD_BYTES behind the network.
        self._writer: _WriteBehind | None = None
        self._received = 0
        self.chunks = 0  # chunks taken so far

    def close(self) -> None:
        if self._writer is not None:
            self._writer.stop()

    async def begin(self, chunk: Chunk) -> Received | None:
        """Start from the first chunk; a result when there is nothing to receive."""
        store = self._store
        digest = validate_digest(chunk.digest)
        if store.has(digest):
            size = store.size(digest)
            return Received(
                digest=digest,
                size_bytes=size,
                complete=True,
                already_present=True,
                resumed_from=size,
                verified_offset=size,
            )
        used = await asyncio.to_thread(store.used_bytes)
        if used + chunk.total_size > self._quota_bytes:
            await asyncio.to_thread(self._collect_garbage, chunk.total_size)
        self.upload = await asyncio.to_thread(store.begin, digest, total_size=chunk.total_size)
        return None

    async def take(self, chunk: Chunk) -> None:
        """Accept one chunk (after `begin`) and queue it for writing."""
        upload = self.upload
        assert upload is not None
        if (chunk.digest and chunk.digest != upload.digest) or (
            chunk.total_size and chunk.total_size != upload.total_size
        ):
            raise errors.InvalidRequest(
                "a push carries one artifact: later chunks must repeat the first chunk's"
                " digest and total_size, or leave them empty"
            )
        data = chunk.data  # a view of the received message: hashed and staged, never copied
        upload.accept(chunk.offset, len(data))
        if self._writer is None:
            self._writer = _WriteBehind(upload.write)
        await self._writer.wait_below(max(0, WRITE_AHEAD_BYTES - len(data)))
        # Hash and write this chunk while the next ones are received.
        self._writer.put(data)
        self._received += len(data)
        self.chunks += 1
        self._observer.push_received(len(data))

    async def finish(self) -> Received:
        if self._writer is not None:
            await self._writer.wait_below(0)
        upload = self.upload
        if upload is None:
            raise errors.InvalidRequest("the push carried no chunk: send at least one")
        if upload.done:
            with spans.verify(digest=upload.digest, size=upload.total_size):
                await asyncio.to_thread(upload.finish)
            self._observer.push_finished(result="stored")
        else:
            await asyncio.to_thread(upload.suspend)
            self._observer.push_finished(result="interrupted")
        return Received(
            digest=upload.digest,
            size_bytes=upload.total_size,
            complete=upload.done,
            resumed_from=upload.resumed_from,
            received_bytes=self._received,
            verified_offset=upload.written,
        )

    async def _settle(self) -> None:
        """Wait for the writes queued before the upload is suspended or discarded."""
        writer = self._writer
        if writer is None:
            return
        try:
            # Their own error, if any, is what the caller reports.
            with contextlib.suppress(Exception):
                await writer.wait_below(0)
        except asyncio.CancelledError:
            # Cancelled again: write nothing more. The chunk being written holds the
            # upload's lock, so suspending or discarding the upload waits for it anyway.
            pass
        finally:
            writer.stop()

    async def fail(self, error: errors.AgentError) -> None:
        self._observer.push_finished(result="rejected")
        await self._settle()
        upload = self.upload
        if upload is None or upload.closed:
            return
        if isinstance(error, errors.SizeExceeded | errors.InvalidRequest):
            await asyncio.to_thread(upload.discard)
        else:
            await asyncio.to_thread(upload.suspend)

    async def interrupted(self) -> None:
        self._observer.push_finished(result="interrupted")
        await self._settle()
        if self.upload is not None and not self.upload.closed:
            self.upload.suspend()
