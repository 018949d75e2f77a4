"""Store limits under concurrency, idle pushes, and a store only the agent's user can read."""

from __future__ import annotations

import hashlib
import os
import random
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgewave_agent import errors
from edgewave_agent.store import Store

KiB = 1024
PUSHES = 8


@pytest.fixture
def stores() -> Iterator[list[Store]]:
    opened: list[Store] = []
    yield opened
    for store in opened:
        if not store._lock_file.closed:
            store.close()


def _open(stores: list[Store], root: Path, **options: object) -> Store:
    store = Store(root, **{"quota_bytes": 1 << 20, "checkpoint_bytes": 64 * KiB, **options})  # type: ignore[arg-type]
    stores.append(store)
    return store


def _data(size: int, seed: int) -> tuple[bytes, str]:
    data = random.Random(seed).randbytes(size)
    return data, hashlib.sha256(data).hexdigest()


def _reserved(store: Store) -> int:
    return store.used_bytes()


def test_concurrent_pushes_never_reserve_more_than_the_quota(
    stores: list[Store], tmp_path: Path
) -> None:
    # 8 pushes of 300 KiB against a 1 MiB quota, all starting at once: 3 fit, 5 must not.
    quota = 1 << 20
    store = _open(stores, tmp_path / "store", quota_bytes=quota, max_uploads=PUSHES)
    size = 300 * KiB
    pushes = [_data(size, seed) for seed in range(PUSHES)]
    start = threading.Barrier(PUSHES)
    began: list[str] = []
    refused: list[str] = []
    peaks: list[int] = []
    lock = threading.Lock()

    def push(data: bytes, digest: str) -> None:
        start.wait()
        try:
            upload = store.begin(digest, total_size=len(data))
        except errors.QuotaExceeded:
            with lock:
                refused.append(digest)
            return
        with lock:
            began.append(digest)
            peaks.append(_reserved(store))
        upload.accept(0, len(data))
        upload.write(data)
        upload.finish()
        with lock:
            peaks.append(_reserved(store))

    threads = [threading.Thread(target=push, args=pushed) for pushed in pushes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert len(began) == quota // size and len(refused) == PUSHES - len(began)
    assert max(peaks) <= quota
    assert sum(store.artifacts().values()) == len(began) * size <= quota


def test_concurrent_pushes_are_bounded(stores: list[Store], tmp_path: Path) -> None:
    store = _open(stores, tmp_path / "store", max_uploads=2)
    uploads = [store.begin(_data(KiB, seed)[1], total_size=KiB) for seed in range(2)]
    with pytest.raises(errors.PushInProgress, match="receiving 2 pushes already") as caught:
        store.begin(_data(KiB, 2)[1], total_size=KiB)
    assert caught.value.temporary
    uploads[0].suspend()
    store.begin(_data(KiB, 2)[1], total_size=KiB)  # a place is free again


def test_an_idle_push_is_closed_when_its_place_is_needed(
    stores: list[Store], tmp_path: Path
) -> None:
    now = [1000.0]
    store = _open(
        stores, tmp_path / "store", max_uploads=1, idle_upload_seconds=30.0, clock=lambda: now[0]
    )
    data, digest = _data(4 * KiB, 0)
    stalled = store.begin(digest, total_size=len(data))
    stalled.accept(0, KiB)
    stalled.write(data[:KiB])
    other = _data(KiB, 1)[1]
    now[0] += 29.0
    with pytest.raises(errors.PushInProgress):
        store.begin(other, total_size=KiB)
    now[0] += 2.0  # 31 s without a byte
    store.begin(other, total_size=KiB)
    with pytest.raises(errors.AgentError, match="closed"):
        stalled.write(data[KiB : 2 * KiB])
    assert store.stat(digest).verified_offset == KiB  # its bytes were kept for a resume


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_files_and_directories_are_private(stores: list[Store], tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        store = _open(stores, tmp_path / "store")
        done, done_digest = _data(8 * KiB, 0)
        upload = store.begin(done_digest, total_size=len(done))
        upload.accept(0, len(done))
        upload.write(done)
        upload.finish()
        part, part_digest = _data(200 * KiB, 1)
        partial = store.begin(part_digest, total_size=len(part))
        partial.accept(0, 100 * KiB)
        partial.write(part[: 100 * KiB])
        partial.suspend()
        engine = tmp_path / "engine.bin"
        engine.write_bytes(b"an engine built here")
        imported, _ = store.import_file(engine)
    finally:
        os.umask(previous)
    for directory in (store.root, store.root / "blobs", store.root / "partial"):
        assert _mode(directory) == 0o700, directory
    assert _mode(store.blob_path(done_digest)) == 0o400
    assert _mode(store.blob_path(imported)) == 0o400
    assert _mode(store.partial_path(part_digest)) == 0o600
    assert _mode(store.sidecar_path(part_digest)) == 0o600
    assert _mode(store.root / ".lock") == 0o600


def test_a_store_left_readable_is_tightened(stores: list[Store], tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = _open(stores, root)
    data, digest = _data(KiB, 0)
    upload = store.begin(digest, total_size=len(data))
    upload.accept(0, len(data))
    upload.write(data)
    upload.finish()
    store.close()
    for path in (root, root / "blobs", root / "partial"):
        path.chmod(0o755)
    store.blob_path(digest).chmod(0o644)
    reopened = _open(stores, root)
    assert _mode(root) == _mode(root / "blobs") == 0o700
    assert _mode(reopened.blob_path(digest)) == 0o400


def test_imports_count_against_the_quota(stores: list[Store], tmp_path: Path) -> None:
    store = _open(stores, tmp_path / "store", quota_bytes=4 * KiB)
    engine = tmp_path / "engine.bin"
    engine.write_bytes(bytes(8 * KiB))
    with pytest.raises(errors.QuotaExceeded, match="does not fit the store quota"):
        store.import_file(engine)
    assert store.artifacts() == {}
