"""The content-addressed store: verification, resume, crash recovery, limits, paths."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgewave_agent import errors
from edgewave_agent.store import Store, validate_digest

KiB = 1024
CHECKPOINT = 64 * KiB


def _data(size: int, seed: int = 0) -> tuple[bytes, str]:
    data = random.Random(seed).randbytes(size)
    return data, hashlib.sha256(data).hexdigest()


_OPEN: list[Store] = []


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    while _OPEN:
        store = _OPEN.pop()
        if not store._lock_file.closed:
            store.close()


def _store(root: Path, **kwargs: int) -> Store:
    options = {"quota_bytes": 10 << 20, "checkpoint_bytes": CHECKPOINT, **kwargs}
    store = Store(root, **options)
    _OPEN.append(store)
    return store


def _send(store: Store, digest: str, *, data: bytes, start: int, stop: int, step: int) -> None:
    upload = store.begin(digest, total_size=len(data))
    assert upload.resumed_from == start
    for offset in range(start, stop, step):
        piece = data[offset : min(offset + step, stop)]
        upload.accept(offset, len(piece))
        upload.write(piece)
    if upload.done:
        upload.finish()
    else:
        upload.suspend()


def test_complete_push_is_verified_and_stored(tmp_path: Path) -> None:
    store = _store(tmp_path)
    data, digest = _data(300 * KiB)
    _send(store, digest, data=data, start=0, stop=len(data), step=10 * KiB)
    assert store.has(digest)
    assert store.blob_path(digest).read_bytes() == data
    assert store.artifacts() == {digest: len(data)}
    assert not list((tmp_path / "partial").iterdir())
    stat = store.stat(digest)
    assert stat.complete and stat.verified_offset == len(data)


def test_broken_stream_resumes_in_process_without_resending(tmp_path: Path) -> None:
    store = _store(tmp_path)
    data, digest = _data(300 * KiB)
    _send(store, digest, data=data, start=0, stop=70 * KiB, step=10 * KiB)
    assert store.stat(digest).verified_offset == 70 * KiB
    _send(store, digest, data=data, start=70 * KiB, stop=len(data), step=10 * KiB)
    assert store.blob_path(digest).read_bytes() == data


def test_crash_loses_at_most_the_bytes_not_yet_fsynced(tmp_path: Path) -> None:
    data, digest = _data(400 * KiB)
    crashed = _store(tmp_path)
    upload = crashed.begin(digest, total_size=len(data))
    for offset in range(0, 250 * KiB, 10 * KiB):
        upload.accept(offset, 10 * KiB)
        upload.write(data[offset : offset + 10 * KiB])
    # A crash: no suspend, no checkpoint; open files and the lock die with the process.
    # (A real crash also kills a background fdatasync; here it is let finish first, since
    # a thread cannot be killed. test_push.py SIGKILLs a real agent.)
    upload._wait_sync()
    upload._writer.close()  # staged bytes die with the process too
    crashed._lock_file.close()
    restarted = _store(tmp_path)
    stat = restarted.stat(digest)
    # At most checkpoint_bytes plus the last write were not durable yet.
    assert 250 * KiB - CHECKPOINT - 10 * KiB <= stat.verified_offset <= 250 * KiB
    assert stat.total_size == len(data) and not stat.complete
    _send(restarted, digest, data=data, start=stat.verified_offset, stop=len(data), step=10 * KiB)
    assert hashlib.sha256(restarted.blob_path(digest).read_bytes()).hexdigest() == digest


def test_digest_mismatch_discards_everything(tmp_path: Path) -> None:
    store = _store(tmp_path)
    data, _ = _data(100 * KiB)
    wrong = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(errors.DigestMismatch, match="push again from offset 0"):
        _send(store, wrong, data=data, start=0, stop=len(data), step=10 * KiB)
    assert store.artifacts() == {}
    assert store.stat(wrong).verified_offset == 0
    assert store.used_bytes() == 0


@pytest.mark.parametrize(("offset", "kind"), [(20 * KiB, "gap"), (5 * KiB, "overlap")])
def test_offset_gaps_and_overlaps_name_the_expected_offset(
    tmp_path: Path, offset: int, kind: str
) -> None:
    store = _store(tmp_path)
    data, digest = _data(100 * KiB)
    upload = store.begin(digest, total_size=len(data))
    upload.accept(0, 10 * KiB)
    upload.write(data[: 10 * KiB])
    with pytest.raises(errors.OffsetMismatch, match=kind) as caught:
        upload.accept(offset, 10 * KiB)
    assert caught.value.expected_offset == 10 * KiB


def test_sizes_beyond_the_declared_total_or_limits_are_refused(tmp_path: Path) -> None:
    store = _store(tmp_path, quota_bytes=800 * KiB, max_artifact_bytes=512 * KiB)
    _, digest = _data(10)
    upload = store.begin(digest, total_size=100)
    with pytest.raises(errors.SizeExceeded, match="declared total size 100"):
        upload.accept(0, 101)
    upload.discard()
    with pytest.raises(errors.SizeExceeded, match="max_artifact_bytes"):
        store.begin(digest, total_size=600 * KiB)
    data, big = _data(500 * KiB, seed=3)
    _send(store, big, data=data, start=0, stop=len(data), step=100 * KiB)
    with pytest.raises(errors.QuotaExceeded, match="quota") as caught:
        store.begin(_data(1, seed=9)[1], total_size=400 * KiB)
    assert caught.value.temporary


def test_a_second_push_of_the_same_digest_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _, digest = _data(10)
    store.begin(digest, total_size=10)
    with pytest.raises(errors.PushInProgress) as caught:
        store.begin(digest, total_size=10)
    assert caught.value.status == "ABORTED"
    assert store.stat(digest).in_progress


def test_a_resume_must_declare_the_same_size(tmp_path: Path) -> None:
    store = _store(tmp_path)
    data, digest = _data(100 * KiB)
    _send(store, digest, data=data, start=0, stop=50 * KiB, step=10 * KiB)
    with pytest.raises(errors.SizeConflict):
        store.begin(digest, total_size=len(data) + 1)


@pytest.mark.parametrize(
    "digest",
    [
        "",
        "../../etc/passwd",
        "sha256:" + "a" * 64,
        "A" * 64,
        "a" * 63,
        "a" * 65,
        "g" * 64,
        "a" * 63 + "/",
        "a" * 64 + "\n",
    ],
)
def test_only_lowercase_hex_sha256_digests_name_paths(tmp_path: Path, digest: str) -> None:
    store = _store(tmp_path)
    with pytest.raises(errors.InvalidDigest, match="64 lowercase hex"):
        validate_digest(digest)
    with pytest.raises(errors.InvalidDigest):
        store.blob_path(digest)
    with pytest.raises(errors.InvalidDigest):
        store.begin(digest, total_size=1)


def test_one_store_directory_per_agent_process(tmp_path: Path) -> None:
    first = _store(tmp_path)
    with pytest.raises(errors.AgentError, match="in use by another agent"):
        _store(tmp_path)
    first.close()
    _store(tmp_path)


def test_import_and_delete(tmp_path: Path) -> None:
    store = _store(tmp_path / "store")
    source = tmp_path / "engine.bin"
    data, digest = _data(1000)
    source.write_bytes(data)
    assert store.import_file(source) == (digest, 1000)
    assert store.delete(digest) == 1000
    assert store.delete(digest) == 0
    assert not store.has(digest)


def test_abandoned_partials_are_dropped_after_their_ttl(tmp_path: Path) -> None:
    store = _store(tmp_path)
    data, digest = _data(100 * KiB)
    _send(store, digest, data=data, start=0, stop=50 * KiB, step=10 * KiB)
    assert store.used_bytes() == len(data)  # the declared size stays reserved
    assert store.drop_stale_partials(older_than=0.0) == 0
    assert store.drop_stale_partials(older_than=time.time() + 1) == 50 * KiB
    assert store.used_bytes() == 0
    assert store.stat(digest).verified_offset == 0
