"""Receiving one Push stream: order checks, hashing and writing behind the network.

Chunks are checked on the event loop (cheap) and written in order by one thread per push,
up to WRITE_DEPTH chunks behind the network, so hashing and disk writes overlap with
receiving while memory stays bounded. A broken stream leaves every written byte durable for
the resume; a rejected one is discarded or kept as the error requires.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
from typing import TYPE_CHECKING

from edgewave_agent import errors
from edgewave_agent.store import Upload, validate_digest
from edgewave_api.telemetry import spans
from edgewave_proto.agent.v1 import agent_pb2 as pb

if TYPE_CHECKING:
    from edgewave_agent.service import AgentCore

# Chunks received but not yet written, per push (bounds memory to WRITE_DEPTH chunks).
WRITE_DEPTH = 4


class Receiver:
    """The state of one Push stream: its upload and the write in flight."""

    def __init__(self, core: AgentCore) -> None:
        self._core = core
        self.upload: Upload | None = None
        # Writes run in order on one thread, up to WRITE_DEPTH chunks behind the network.
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="push-write")
        self._pending: collections.deque[asyncio.Future[None]] = collections.deque()
        self._received = 0

    def close(self) -> None:
        self._writer.shutdown(wait=False)

    async def begin(self, chunk: pb.PushChunk) -> pb.PushResponse | None:
        """Start from the first chunk; a response when there is nothing to receive."""
        store = self._core.store
        digest = validate_digest(chunk.digest)
        if store.has(digest):
            size = store.size(digest)
            return pb.PushResponse(
                digest=digest,
                size_bytes=size,
                complete=True,
                already_present=True,
                resumed_from=size,
                verified_offset=size,
            )
        used = await asyncio.to_thread(store.used_bytes)
        if used + chunk.total_size > int(self._core.config.store.quota_bytes):
            await asyncio.to_thread(self._core.serving.collect_garbage, chunk.total_size)
        self.upload = await asyncio.to_thread(store.begin, digest, total_size=chunk.total_size)
        return None

    async def take(self, chunk: pb.PushChunk) -> None:
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
        data = chunk.data  # protobuf copies the bytes on every access: read them once
        upload.accept(chunk.offset, len(data))
        while len(self._pending) >= WRITE_DEPTH:
            await self._pending.popleft()
        # Hash and write this chunk while the next ones are received.
        loop = asyncio.get_running_loop()
        self._pending.append(loop.run_in_executor(self._writer, upload.write, data))
        self._received += len(data)
        self._core.observer.push_received(len(data))

    async def finish(self) -> pb.PushResponse:
        while self._pending:
            await self._pending.popleft()
        upload = self.upload
        if upload is None:
            raise errors.InvalidRequest("the push carried no chunk: send at least one")
        if upload.done:
            with spans.verify(digest=upload.digest, size=upload.total_size):
                await asyncio.to_thread(upload.finish)
            self._core.observer.push_finished(result="stored")
        else:
            await asyncio.to_thread(upload.suspend)
            self._core.observer.push_finished(result="interrupted")
        return pb.PushResponse(
            digest=upload.digest,
            size_bytes=upload.total_size,
            complete=upload.done,
            resumed_from=upload.resumed_from,
            received_bytes=self._received,
            verified_offset=upload.written,
        )

    async def _settle(self) -> None:
        """Wait for the writes in flight before the upload is suspended or discarded."""
        while self._pending:
            pending = self._pending.popleft()
            # Their own error, if any, is what the caller reports; a second cancellation
            # is ignored because the writes hold the upload's lock until done anyway.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(pending)

    async def fail(self, error: errors.AgentError) -> None:
        self._core.observer.push_finished(result="rejected")
        await self._settle()
        upload = self.upload
        if upload is None or upload.closed:
            return
        if isinstance(error, errors.SizeExceeded | errors.InvalidRequest):
            await asyncio.to_thread(upload.discard)
        else:
            await asyncio.to_thread(upload.suspend)

    async def interrupted(self) -> None:
        self._core.observer.push_finished(result="interrupted")
        await self._settle()
        if self.upload is not None and not self.upload.closed:
            self.upload.suspend()
