"""Crash-safe file writes: temp file, fsync, rename, fsync of the directory.

A reader (or the agent after a crash) sees either the old content or the new one, never a
torn file. Used for the agent's state and the store's resume records.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` atomically (readers see old or new, never a mix).

    `durable=False` skips the fsyncs: the new content survives a crash of the process but
    maybe not a power cut, after which the old content is seen. Fine for records that only
    ever claim less than what is true (the store's resume offsets).
    """
    temp = path.with_name(f".{path.name}.tmp")
    with temp.open("wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    temp.replace(path)
    if durable:
        fsync_dir(path.parent)
