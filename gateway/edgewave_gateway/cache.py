"""The gateway's engine cache: content-addressed, verified on arrival, resumable, bounded.

Layout under the cache directory:
- `blobs/<digest>`: complete engines whose sha256 was checked when they arrived;
- `partial/<digest>` and `partial/<digest>.json`: an upload in progress and its checkpoint
  (declared size and the verified offset: bytes fsynced and hashed). After a restart the
  file is cut back to that offset, so an upload resumes from bytes known to be on disk;
- `index.json`: size and last use of each engine, and the pins by owner.

Room for an upload is reserved on its first chunk (its declared size); least recently used
engines are evicted to make it (`cachepolicy`), never one that is pinned, being delivered
or being uploaded. Files are written to a temporary name and renamed, so a crash leaves the
old state or the new one. Blocking: call from a worker thread where it matters.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edgewave_gateway import cachepolicy, errors

log = logging.getLogger(__name__)
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_HASH_BLOCK = 4 << 20
MAX_OWNER_LENGTH = 253
MAX_PINS_PER_OWNER = 1024


def check_digest(digest: str) -> str:
    if not _DIGEST.match(digest):
        raise errors.InvalidRequest(
            f"digest {digest[:80]!r} is not a sha256 (64 lowercase hex characters)"
        )
    return digest


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


def sha256_file(path: Path, *, length: int | None = None) -> hashlib._Hash:
    hasher = hashlib.sha256()
    remaining = path.stat().st_size if length is None else length
    with path.open("rb") as handle:
        while remaining > 0:
            block = handle.read(min(_HASH_BLOCK, remaining))
            if not block:
                break
            hasher.update(block)
            remaining -= len(block)
    return hasher


@dataclass(frozen=True)
class Stat:
    digest: str
    complete: bool
    verified_offset: int
    total_size: int
    in_progress: bool
    received_offset: int


class Upload:
    """One upload of an engine into the cache; `take` chunks in order, then `finish`."""

    def __init__(
        self,
        cache: EngineCache,
        *,
        digest: str,
        total_size: int,
        verified_offset: int,
        hasher: hashlib._Hash | None,
        already_present: bool = False,
    ) -> None:
        self._cache = cache
        self.digest = digest
        self.total_size = total_size
        self.resumed_from = verified_offset
        self.verified_offset = verified_offset
        self.received = verified_offset
        self.received_bytes = 0
        self.already_present = already_present
        self.complete = already_present
        self._hasher = hasher
        self._file = None if already_present else cache.partial_path(digest).open("r+b")
        if self._file is not None:
            self._file.seek(verified_offset)
            self._file.truncate(verified_offset)
        self._ended = already_present

    def take(self, offset: int, data: memoryview | bytes) -> None:
        if self._file is None or self._hasher is None:
            raise errors.InvalidRequest("the upload has ended")
        if offset != self.received:
            raise errors.OffsetMismatch(
                f"chunk at offset {offset}: expected {self.received}", expected_offset=self.received
            )
        if self.received + len(data) > self.total_size:
            raise errors.InvalidRequest(
                f"chunk at offset {offset} of {len(data)} bytes goes past total_size"
                f" {self.total_size}"
            )
        self._file.write(data)
        self._hasher.update(data)
        self.received += len(data)
        self.received_bytes += len(data)
        if self.received - self.verified_offset >= self._cache.checkpoint_bytes:
            self._checkpoint()

    def _checkpoint(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self.verified_offset = self.received
        self._cache.record_partial(self.digest, self.total_size, self.verified_offset)

    def finish(self) -> None:
        """Verify and store a complete upload; an incomplete one is checkpointed for a resume."""
        if self._ended:
            return
        if self.received < self.total_size:
            self.interrupt()
            return
        assert self._file is not None and self._hasher is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        actual = self._hasher.hexdigest()
        self._close()
        if actual != self.digest:
            self._cache.drop_partial(self.digest)
            raise errors.DigestMismatch(
                f"the bytes received hash to {actual}, not {self.digest}: they were discarded;"
                " push the engine again"
            )
        self.verified_offset = self.total_size
        self.complete = True
        self._cache.store(self.digest, self.total_size)

    def interrupt(self) -> None:
        """The stream ended early: keep every byte received, durably, for a resume."""
        if self._ended:
            return
        with contextlib.suppress(OSError):
            self._checkpoint()
        self._close()

    def _close(self) -> None:
        self._ended = True
        if self._file is not None:
            self._file.close()
            self._file = None
        self._cache.release_upload(self.digest)


class EngineCache:
    def __init__(
        self,
        directory: Path,
        *,
        capacity_bytes: int,
        checkpoint_bytes: int,
        clock: Callable[[], float],
    ) -> None:
        self.directory = directory
        self.capacity_bytes = capacity_bytes
        self.checkpoint_bytes = checkpoint_bytes
        self._clock = clock
        self._lock = threading.RLock()
        self._entries: dict[str, cachepolicy.Entry] = {}
        self._pins: dict[str, set[str]] = {}
        # digest -> (declared size, verified offset) of partial uploads on disk.
        self._partials: dict[str, tuple[int, int]] = {}
        self._uploads: dict[str, Upload] = {}
        self._in_use: dict[str, int] = {}
        for sub in ("blobs", "partial"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        self._load()

    # -- paths and persistence ------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.directory / "blobs" / digest

    def partial_path(self, digest: str) -> Path:
        return self.directory / "partial" / digest

    def _sidecar(self, digest: str) -> Path:
        return self.directory / "partial" / f"{digest}.json"

    def _load(self) -> None:
        index_path = self.directory / "index.json"
        index: dict[str, object] = {}
        if index_path.exists():
            try:
                index = json.loads(index_path.read_text())
            except (OSError, ValueError):
                log.warning("cache index %s unreadable: rebuilt from the blobs", index_path)
        entries = index.get("entries", {}) if isinstance(index, dict) else {}
        pins = index.get("pins", {}) if isinstance(index, dict) else {}
        for path in (self.directory / "blobs").iterdir():
            if not _DIGEST.match(path.name):
                continue
            known = entries.get(path.name) if isinstance(entries, dict) else None
            last_used = (
                float(known["last_used"]) if isinstance(known, dict) else path.stat().st_mtime
            )
            self._entries[path.name] = cachepolicy.Entry(path.stat().st_size, last_used)
        if isinstance(pins, dict):
            self._pins = {
                str(owner): {d for d in digests if isinstance(d, str) and _DIGEST.match(d)}
                for owner, digests in pins.items()
                if isinstance(digests, list)
            }
        for sidecar in (self.directory / "partial").glob("*.json"):
            digest = sidecar.name.removesuffix(".json")
            data_path = self.partial_path(digest)
            try:
                record = json.loads(sidecar.read_text())
                total, verified = int(record["total_size"]), int(record["verified_offset"])
            except (OSError, ValueError, KeyError, TypeError):
                total, verified = 0, -1
            if not _DIGEST.match(digest) or not data_path.exists() or verified < 0:
                sidecar.unlink(missing_ok=True)
                data_path.unlink(missing_ok=True)
                continue
            verified = min(verified, data_path.stat().st_size)
            with data_path.open("r+b") as handle:
                handle.truncate(verified)
            self._partials[digest] = (total, verified)
        self._save()

    def _save(self) -> None:
        document = {
            "entries": {
                d: {"size": e.size, "last_used": e.last_used}
                for d, e in sorted(self._entries.items())
            },
            "pins": {owner: sorted(digests) for owner, digests in sorted(self._pins.items())},
        }
        _atomic_write(self.directory / "index.json", json.dumps(document, indent=1).encode())

    # -- queries -----------------------------------------------------------------------------

    def used_bytes(self) -> int:
        with self._lock:
            return sum(e.size for e in self._entries.values()) + sum(
                total for total, _ in self._partials.values()
            )

    def digests(self) -> list[str]:
        with self._lock:
            return sorted(self._entries)

    def pinned(self) -> set[str]:
        with self._lock:
            return set().union(*self._pins.values()) if self._pins else set()

    def stat(self, digest: str) -> Stat:
        check_digest(digest)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is not None:
                return Stat(digest, True, entry.size, entry.size, False, entry.size)
            upload = self._uploads.get(digest)
            total, verified = self._partials.get(digest, (0, 0))
            if upload is not None:
                return Stat(digest, False, upload.verified_offset, total, True, upload.received)
            return Stat(digest, False, verified, total, False, verified)

    # -- uploads -----------------------------------------------------------------------------

    def begin(self, *, digest: str, total_size: int, offset: int) -> Upload:
        """Start or resume an upload from the first chunk's header (or answer: stored)."""
        check_digest(digest)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is not None:
                self._entries[digest] = cachepolicy.Entry(entry.size, self._clock())
                upload = Upload(
                    self, digest=digest, total_size=entry.size, verified_offset=entry.size,
                    hasher=None, already_present=True,
                )  # fmt: skip
                return upload
            if digest in self._uploads:
                raise errors.PushInProgress(
                    f"another upload of {digest[:12]} is running: retry when it ends"
                )
            if total_size <= 0:
                raise errors.InvalidRequest("the first chunk must set total_size (> 0)")
            if total_size > self.capacity_bytes:
                raise errors.CacheFull(
                    f"engine of {total_size} bytes is larger than the cache ({self.capacity_bytes})"
                )
            declared, verified = self._partials.get(digest, (total_size, 0))
            if declared != total_size:
                raise errors.SizeConflict(
                    f"{digest[:12]} was started with total_size {declared}, not {total_size}"
                )
            if offset != verified:
                raise errors.OffsetMismatch(
                    f"push of {digest[:12]} must resume at {verified}, not {offset}: ask"
                    " StatEngine",
                    expected_offset=verified,
                )
            if digest not in self._partials:
                self._make_room(total_size)
                self.partial_path(digest).touch()
                self.record_partial(digest, total_size, 0)
            hasher = sha256_file(self.partial_path(digest), length=verified)
            upload = Upload(
                self, digest=digest, total_size=total_size, verified_offset=verified, hasher=hasher
            )
            self._uploads[digest] = upload
            return upload

    def _make_room(self, needed: int) -> None:
        protected = self.pinned() | set(self._in_use) | set(self._uploads)
        chosen = cachepolicy.evictions(
            self._entries,
            needed=needed,
            used=self.used_bytes(),
            capacity=self.capacity_bytes,
            protected=protected,
        )
        if chosen is None:
            raise errors.CacheFull(
                f"the cache cannot make room for {needed} bytes: {self.used_bytes()} of"
                f" {self.capacity_bytes} are held by pinned, delivering or partial engines;"
                " unpin engines no rollout needs or raise cache.capacity_bytes"
            )
        for digest in chosen:
            log.info("cache: evicting %s (least recently used)", digest[:12])
            self._delete(digest)

    def record_partial(self, digest: str, total_size: int, verified_offset: int) -> None:
        with self._lock:
            self._partials[digest] = (total_size, verified_offset)
        record = {"total_size": total_size, "verified_offset": verified_offset}
        _atomic_write(self._sidecar(digest), json.dumps(record).encode())

    def release_upload(self, digest: str) -> None:
        with self._lock:
            self._uploads.pop(digest, None)

    def drop_partial(self, digest: str) -> None:
        with self._lock:
            self._partials.pop(digest, None)
            self.partial_path(digest).unlink(missing_ok=True)
            self._sidecar(digest).unlink(missing_ok=True)

    def store(self, digest: str, size: int) -> None:
        with self._lock:
            self.partial_path(digest).replace(self.blob_path(digest))
            self._sidecar(digest).unlink(missing_ok=True)
            self._partials.pop(digest, None)
            self._entries[digest] = cachepolicy.Entry(size, self._clock())
            self._save()
        # One line per engine that entered the cache (tests count uploads by it).
        log.info("cache: stored engine %s (%d bytes)", digest, size)

    # -- use, pins, eviction -----------------------------------------------------------------

    @contextlib.contextmanager
    def using(self, digest: str) -> Iterator[Path]:
        """The blob of a cached engine, protected from eviction while in use."""
        check_digest(digest)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                raise errors.NotCached(
                    f"engine {digest[:12]} is not in this gateway's cache: push it first"
                    " (StatEngine, PushEngine)"
                )
            self._entries[digest] = cachepolicy.Entry(entry.size, self._clock())
            self._in_use[digest] = self._in_use.get(digest, 0) + 1
            self._save()
        try:
            yield self.blob_path(digest)
        finally:
            with self._lock:
                left = self._in_use.get(digest, 1) - 1
                if left:
                    self._in_use[digest] = left
                else:
                    self._in_use.pop(digest, None)

    def verify(self, digest: str) -> bool:
        """Re-hash a cached engine; a copy that no longer matches its digest is dropped."""
        path = self.blob_path(digest)
        if not path.exists():
            return False
        if sha256_file(path).hexdigest() == digest:
            return True
        log.error("cache: %s does not match its digest any more: dropped", digest[:12])
        with self._lock:
            self._delete(digest)
        return False

    def _delete(self, digest: str) -> None:
        self._entries.pop(digest, None)
        self.blob_path(digest).unlink(missing_ok=True)
        self._save()

    def set_pins(self, owner: str, digests: list[str]) -> set[str]:
        """Replace `owner`'s pins; returns every pinned digest."""
        if not owner or len(owner) > MAX_OWNER_LENGTH:
            raise errors.InvalidRequest(f"owner must be 1-{MAX_OWNER_LENGTH} characters")
        if len(digests) > MAX_PINS_PER_OWNER:
            raise errors.InvalidRequest(f"at most {MAX_PINS_PER_OWNER} digests per owner")
        wanted = {check_digest(d) for d in digests}
        with self._lock:
            if wanted:
                self._pins[owner] = wanted
            else:
                self._pins.pop(owner, None)
            self._save()
            return self.pinned()
