"""Writing one file front to back with direct I/O, for artifacts being received.

A buffered write of fresh data costs the kernel a page-cache page per 4 KiB (allocated,
filled, written back later): 2-3 CPU-seconds per GiB on a small VM, more than hashing the
same bytes. Direct I/O (O_DIRECT) lets the device read the bytes straight from a
page-aligned buffer: one memcpy into that buffer, and about 0.1 CPU-s/GiB in the kernel.
It also leaves the page cache to the models being served instead of filling it with an
engine nobody reads until it is activated.

Bytes are staged in page-aligned buffers and written in whole blocks by a helper thread,
so staging (and the caller's hashing) of the next bytes overlaps the device writing the
previous ones. `flush` puts every byte given into the file: whole blocks directly, the
last partial block with an ordinary write, which direct I/O cannot do; that block is kept
staged and rewritten whole by the next direct write. Where the filesystem refuses direct
I/O (tmpfs on older kernels, some network filesystems), every write is an ordinary one.
"""

from __future__ import annotations

import concurrent.futures
import errno
import logging
import mmap
import os
from pathlib import Path

log = logging.getLogger(__name__)

# Direct I/O offsets and lengths must be multiples of the device's logical block size:
# 4096 covers 512-byte and 4 KiB devices. A write refused anyway falls back to buffered.
BLOCK = 4096
STAGE_BYTES = 4 << 20
# One direct write in flight per file; shared by every file being written in the process.
_WRITERS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="disk-write")
_O_DIRECT = getattr(os, "O_DIRECT", 0)


class StagedWriter:
    """Appends to `path` from byte `offset` on (the file is truncated there).

    Not thread-safe: one caller at a time (the store's upload holds its lock), while the
    helper thread writes the previous buffer. `direct=False` writes through the page cache.
    """

    def __init__(
        self, path: Path, *, offset: int, direct: bool = True, stage_bytes: int = STAGE_BYTES
    ) -> None:
        if stage_bytes % BLOCK or stage_bytes <= 0:
            raise ValueError(f"stage_bytes must be a positive multiple of {BLOCK}")
        self.path = path
        self._stage_bytes = stage_bytes
        # Only the agent's user reads the store (see store.FILE_MODE).
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._direct_fd = -1
        try:
            os.truncate(self._fd, offset)
            if direct and _O_DIRECT:
                self._direct_fd = self._open_direct(path)
        except BaseException:
            os.close(self._fd)
            raise
        # The staged bytes belong at file offset `_base` (block-aligned) onwards.
        self._base = offset - offset % BLOCK
        self._fill = offset - self._base
        self._buffers: list[mmap.mmap] = []
        self._pending: concurrent.futures.Future[None] | None = None
        self.closed = False

    @property
    def direct(self) -> bool:
        return self._direct_fd >= 0

    @property
    def position(self) -> int:
        """The file offset the next byte goes to."""
        return self._base + self._fill

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        buffer = self._stage()
        taken = 0
        while taken < len(view):
            count = min(len(view) - taken, self._stage_bytes - self._fill)
            buffer[self._fill : self._fill + count] = view[taken : taken + count]
            self._fill += count
            taken += count
            if self._fill == self._stage_bytes:
                self._write_behind()
                buffer = self._stage()

    def flush(self) -> None:
        """Put every byte written so far into the file (not yet durable: see `sync`)."""
        self._wait()
        if not self._buffers or not self._fill:
            return
        buffer = self._buffers[0]
        whole = self._fill - self._fill % BLOCK
        if whole:
            self._write_blocks(buffer, whole, self._base)
            tail = self._fill - whole
            buffer[:tail] = buffer[whole : self._fill]
            self._base += whole
            self._fill = tail
        if self._fill:
            with memoryview(buffer)[: self._fill] as view:
                _pwrite_all(self._fd, view, self._base)

    def sync(self) -> None:
        """fdatasync: every byte flushed before this call is durable after it."""
        os.fdatasync(self._fd)

    def release_buffers(self) -> None:
        """Flush and free the staging memory (the writer stays usable; it re-reads the tail)."""
        self.flush()
        for buffer in self._buffers:
            buffer.close()
        self._buffers.clear()

    def close(self) -> None:
        """Free everything; unflushed bytes are lost (call `flush` first to keep them)."""
        if self.closed:
            return
        self.closed = True
        try:
            self._wait()
        finally:
            for buffer in self._buffers:
                buffer.close()
            self._buffers.clear()
            for fd in (self._fd, self._direct_fd):
                if fd >= 0:
                    os.close(fd)

    # Internals ---------------------------------------------------------------------------
    @staticmethod
    def _open_direct(path: Path) -> int:
        try:
            return os.open(path, os.O_WRONLY | os.O_CLOEXEC | _O_DIRECT)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            log.debug("%s refuses direct I/O: writing through the page cache", path.parent)
            return -1

    def _stage(self) -> mmap.mmap:
        """The buffer being filled; (re)allocated with the partial block read back."""
        if not self._buffers:
            self._buffers = [mmap.mmap(-1, self._stage_bytes) for _ in range(2)]
            if self._fill:
                with memoryview(self._buffers[0])[: self._fill] as view:
                    if os.preadv(self._fd, [view], self._base) != self._fill:
                        raise OSError(errno.EIO, f"{self.path} is shorter than was written")
        return self._buffers[0]

    def _write_behind(self) -> None:
        """Hand the full buffer to the helper thread and stage into the other one."""
        self._wait()
        full, spare = self._buffers
        self._pending = _WRITERS.submit(self._write_blocks, full, self._stage_bytes, self._base)
        self._buffers = [spare, full]
        self._base += self._stage_bytes
        self._fill = 0

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _write_blocks(self, buffer: mmap.mmap, length: int, offset: int) -> None:
        with memoryview(buffer)[:length] as view:
            if self._direct_fd >= 0:
                try:
                    _pwrite_all(self._direct_fd, view, offset)
                    return
                except OSError as error:
                    if error.errno != errno.EINVAL:
                        raise
                    # Alignment this device or filesystem refuses: buffered from now on.
                    log.debug(
                        "direct write to %s refused: writing through the page cache", self.path
                    )
                    os.close(self._direct_fd)
                    self._direct_fd = -1
            _pwrite_all(self._fd, view, offset)


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)
