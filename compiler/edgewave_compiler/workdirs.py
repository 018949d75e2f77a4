"""Empty private working directories for everything that reads a model.

ONNX tooling resolves relative paths a model names against the working directory. Edgewave
refuses such models (`externaldata`), and as a second wall it never lets a model reader run
where readable files lie: in the images the working directory would be `/` (or a
service-account token's neighbourhood), in tests the repository. Each build worker starts
in a fresh directory of its own, mode 0700, empty, removed afterwards; the worker also moves
itself into one when started by hand, so the in-process build paths behave the same.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

PREFIX = "edgewave-cwd-"
MODE = 0o700


@contextlib.contextmanager
def private_dir() -> Iterator[Path]:
    """A new empty directory only this user can enter, removed with its contents on exit."""
    path = Path(tempfile.mkdtemp(prefix=PREFIX))
    try:
        path.chmod(MODE)  # mkdtemp makes 0700 already; say so where it matters
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def inside_private_dir() -> Iterator[Path]:
    """Change this process's working directory to a `private_dir` for the duration.

    The working directory is per process: use this only in a process that does nothing
    else meanwhile (a build worker, a CLI command), never in a threaded server.
    """
    previous = Path.cwd()
    with private_dir() as path:
        os.chdir(path)
        try:
            yield path
        finally:
            os.chdir(previous)
