"""Crash-safe file writes: temp file, fsync, rename, fsync of the directory.

A reader (or the agent after a crash) sees either the old content or the new one, never a
torn file. Used for the agent's state and the store's resume records.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, durable: bool = True, mode: int = 0o600) -> None:
    """Replace `path` with `data` atomically (readers see old or new, never a mix).

    `durable=False` skips the fsyncs: the new content survives a crash of the process but
    maybe not a power cut, after which the old content is seen. Fine for records that only
    ever claim less than what is true (the store's resume offsets). The file is created
    with `mode` (default 0600: agent state and store records are the agent's alone).
    """
    temp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()  # a leftover of a crash, maybe with another mode
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    temp.replace(path)
    if durable:
        fsync_dir(path.parent)
