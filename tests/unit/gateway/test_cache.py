"""The gateway's engine cache on disk: verified arrival, resume after restart, pinned LRU."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from edgewave_gateway import cache, errors

MiB = 1 << 20


def _cache(
    directory: Path, *, capacity: int = 10 * MiB, now: list[float] | None = None
) -> cache.EngineCache:
    clock = now or [1000.0]
    return cache.EngineCache(
        directory, capacity_bytes=capacity, checkpoint_bytes=64 << 10, clock=lambda: clock[0]
    )


def _engine(size: int, seed: int) -> tuple[bytes, str]:
    data = random.Random(seed).randbytes(size)
    return data, hashlib.sha256(data).hexdigest()


def _upload(
    engines: cache.EngineCache, data: bytes, digest: str, *, stop: int | None = None
) -> cache.Upload:
    upload = engines.begin(
        digest=digest, total_size=len(data), offset=engines.stat(digest).verified_offset
    )
    position = upload.received
    end = len(data) if stop is None else stop
    while position < end:
        piece = data[position : min(position + 100_000, end)]
        upload.take(position, piece)
        position += len(piece)
    if stop is None:
        upload.finish()
    else:
        upload.interrupt()
    return upload


def test_upload_resumes_after_restart_from_the_verified_offset(tmp_path: Path) -> None:
    data, digest = _engine(MiB, 1)
    _upload(_cache(tmp_path), data, digest, stop=700_000)
    reopened = _cache(tmp_path)
    stat = reopened.stat(digest)
    assert 0 < stat.verified_offset <= 700_000
    assert not stat.complete
    upload = _upload(reopened, data, digest)
    assert upload.resumed_from == stat.verified_offset
    assert upload.received_bytes == len(data) - stat.verified_offset
    assert _cache(tmp_path).stat(digest).complete
    assert (tmp_path / "blobs" / digest).read_bytes() == data


def test_bytes_that_do_not_match_the_digest_are_refused(tmp_path: Path) -> None:
    engines = _cache(tmp_path)
    data, _ = _engine(200_000, 2)
    _, other = _engine(200_000, 3)
    with pytest.raises(errors.DigestMismatch, match="hash to"):
        _upload(engines, data, other)
    assert engines.stat(other).verified_offset == 0
    assert engines.digests() == []


@pytest.mark.parametrize(
    ("digest", "total", "offset", "error", "match"),
    [
        ("sha256:abc", 10, 0, errors.InvalidRequest, "not a sha256"),
        ("A" * 64, 10, 0, errors.InvalidRequest, "not a sha256"),
        ("0" * 64, 0, 0, errors.InvalidRequest, "total_size"),
        ("0" * 64, 20 * MiB, 0, errors.CacheFull, "larger than the cache"),
        ("0" * 64, 10, 5, errors.OffsetMismatch, "must resume at 0"),
    ],
)
def test_bad_first_chunks_are_refused(
    *, tmp_path: Path, digest: str, total: int, offset: int, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        _cache(tmp_path).begin(digest=digest, total_size=total, offset=offset)


def test_chunks_past_the_declared_size_or_out_of_order_are_refused(tmp_path: Path) -> None:
    upload = _cache(tmp_path).begin(digest="1" * 64, total_size=10, offset=0)
    with pytest.raises(errors.OffsetMismatch):
        upload.take(3, b"abc")
    with pytest.raises(errors.InvalidRequest, match="past total_size"):
        upload.take(0, b"x" * 11)
    upload.interrupt()


def test_lru_eviction_never_evicts_pinned_or_delivering_engines(tmp_path: Path) -> None:
    now = [1000.0]
    engines = _cache(tmp_path, capacity=3 * MiB, now=now)
    stored = []
    for seed in range(3):
        data, digest = _engine(MiB, 10 + seed)
        now[0] += 1
        _upload(engines, data, digest)
        stored.append(digest)
    oldest, middle, _newest = stored
    engines.set_pins("rollout-a", [oldest])
    data, digest = _engine(MiB, 20)
    now[0] += 1
    with engines.using(middle):
        # The oldest is pinned and the middle one is being delivered: the newest goes.
        _upload(engines, data, digest)
    assert set(engines.digests()) == {oldest, middle, digest}
    # Pins and last use survive a restart.
    reopened = _cache(tmp_path, capacity=3 * MiB, now=now)
    assert reopened.pinned() == {oldest}
    data, extra = _engine(MiB, 21)
    now[0] += 1
    _upload(reopened, data, extra)
    # The pinned oldest stays; one of the two used at 1004 made room.
    assert oldest in reopened.digests()
    assert extra in reopened.digests()
    assert len({middle, digest} & set(reopened.digests())) == 1
    # Everything pinned: an upload that needs room is refused, nothing is evicted.
    reopened.set_pins("rollout-b", reopened.digests())
    data, refused = _engine(MiB, 22)
    with pytest.raises(errors.CacheFull, match="pinned"):
        _upload(reopened, data, refused)
    assert len(reopened.digests()) == 3
    reopened.set_pins("rollout-b", [])
    assert reopened.pinned() == {oldest}


def test_a_cached_copy_that_stops_matching_is_dropped(tmp_path: Path) -> None:
    engines = _cache(tmp_path)
    data, digest = _engine(300_000, 5)
    _upload(engines, data, digest)
    assert engines.verify(digest)
    blob = tmp_path / "blobs" / digest
    flipped = bytearray(blob.read_bytes())
    flipped[1234] ^= 0x01
    blob.write_bytes(bytes(flipped))
    assert not engines.verify(digest)
    assert not engines.stat(digest).complete
    with pytest.raises(errors.NotCached, match="push it first"), engines.using(digest):
        pass


@pytest.mark.parametrize("owner", ["", "x" * 254])
def test_pin_owner_must_be_named(tmp_path: Path, owner: str) -> None:
    with pytest.raises(errors.InvalidRequest, match="owner"):
        _cache(tmp_path).set_pins(owner, [])
