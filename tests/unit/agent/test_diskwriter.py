"""StagedWriter: every byte lands where it belongs, with direct I/O or without."""

from __future__ import annotations

import errno
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgewave_agent import diskwriter
from edgewave_agent.diskwriter import BLOCK, StagedWriter

STAGE = 8 * BLOCK  # small, so a few KiB cross several buffers


def _direct_supported(directory: Path) -> bool:
    probe = directory / "probe"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_DIRECT))
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)
    return True


def _pieces(data: bytes, seed: int) -> Iterator[bytes]:
    """`data` in pieces of random sizes, some unaligned, some bigger than a buffer."""
    rng = random.Random(seed)
    position = 0
    while position < len(data):
        size = rng.choice([1, 100, BLOCK - 1, BLOCK, 3 * BLOCK + 7, 2 * STAGE + 5])
        yield data[position : position + size]
        position += size


@pytest.fixture(params=[True, False], ids=["direct", "buffered"])
def direct(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.mark.parametrize("seed", range(4))
def test_bytes_written_in_any_pieces_make_the_file(tmp_path: Path, direct: bool, seed: int) -> None:
    data = random.Random(seed).randbytes(5 * STAGE + 1234)
    writer = StagedWriter(tmp_path / "f", offset=0, direct=direct, stage_bytes=STAGE)
    assert writer.direct == (direct and _direct_supported(tmp_path))
    for piece in _pieces(data, seed):
        writer.write(memoryview(piece))
    assert writer.position == len(data)
    writer.flush()
    writer.sync()
    writer.close()
    assert (tmp_path / "f").read_bytes() == data


def test_flush_puts_every_byte_in_the_file_and_writing_goes_on(
    tmp_path: Path, direct: bool
) -> None:
    data = random.Random(1).randbytes(3 * STAGE)
    path = tmp_path / "f"
    writer = StagedWriter(path, offset=0, direct=direct, stage_bytes=STAGE)
    for cut in (BLOCK + 10, STAGE + 3, 2 * STAGE + BLOCK + 99):
        writer.write(data[writer.position : cut])
        writer.flush()
        # The unaligned tail is in the file too, and the next direct write rewrites it.
        assert path.read_bytes() == data[:cut]
    writer.write(data[writer.position :])
    writer.flush()
    writer.close()
    assert path.read_bytes() == data


@pytest.mark.parametrize("resume_at", [0, 1, BLOCK, BLOCK + 1, STAGE + 17])
def test_resuming_at_any_offset_keeps_the_bytes_before_it_and_drops_those_after(
    tmp_path: Path, direct: bool, resume_at: int
) -> None:
    data = random.Random(resume_at).randbytes(2 * STAGE + 300)
    path = tmp_path / "f"
    path.write_bytes(data[:resume_at] + b"\xff" * 5000)  # bytes past the offset are stale
    writer = StagedWriter(path, offset=resume_at, direct=direct, stage_bytes=STAGE)
    assert path.stat().st_size == resume_at
    assert writer.position == resume_at
    writer.write(data[resume_at:])
    writer.flush()
    writer.close()
    assert path.read_bytes() == data


def test_released_buffers_are_rebuilt_from_the_file(tmp_path: Path, direct: bool) -> None:
    data = random.Random(2).randbytes(2 * STAGE + 777)
    path = tmp_path / "f"
    writer = StagedWriter(path, offset=0, direct=direct, stage_bytes=STAGE)
    writer.write(data[: STAGE + 333])
    writer.release_buffers()  # a suspended push keeps no staging memory
    writer.write(data[STAGE + 333 :])
    writer.flush()
    writer.close()
    assert path.read_bytes() == data


def test_close_without_flush_keeps_only_what_was_flushed(tmp_path: Path) -> None:
    data = random.Random(3).randbytes(STAGE)
    path = tmp_path / "f"
    writer = StagedWriter(path, offset=0, stage_bytes=STAGE)
    writer.write(data[:1000])
    writer.flush()
    writer.write(data[1000:3000])  # staged, never flushed: lost, like a crash would lose it
    writer.close()
    assert path.read_bytes() == data[:1000]


def test_a_filesystem_refusing_direct_io_is_written_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def no_direct(path: object, flags: int, *args: int) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(diskwriter.os, "open", no_direct)
    data = random.Random(4).randbytes(3 * STAGE + 5)
    writer = StagedWriter(tmp_path / "f", offset=0, stage_bytes=STAGE)
    assert not writer.direct
    writer.write(data)
    writer.flush()
    writer.close()
    assert (tmp_path / "f").read_bytes() == data


def test_a_direct_write_refused_later_falls_back_without_losing_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not _direct_supported(tmp_path):
        pytest.skip(f"{tmp_path} refuses O_DIRECT: the fallback at open is tested above")
    writer = StagedWriter(tmp_path / "f", offset=0, stage_bytes=STAGE)
    direct_fd = writer._direct_fd
    real_pwrite = os.pwrite

    def refuse_direct(fd: int, data: memoryview, offset: int) -> int:
        if fd == direct_fd:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(diskwriter.os, "pwrite", refuse_direct)
    data = random.Random(5).randbytes(3 * STAGE + 5)
    writer.write(data)
    writer.flush()
    assert not writer.direct
    writer.close()
    assert (tmp_path / "f").read_bytes() == data


def test_stage_size_must_be_whole_blocks(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of 4096"):
        StagedWriter(tmp_path / "f", offset=0, stage_bytes=BLOCK + 1)
