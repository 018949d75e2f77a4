"""Content-addressed, resumable, crash-safe artifact store.

Artifacts (engines, ONNX models) are named by the sha256 of their bytes. Paths derive only
from validated lowercase 64-hex digests, so no request can name a path outside the store.
A push writes to `partial/<digest>.part`, hashing incrementally; every `checkpoint_bytes`
the partial is fsynced and `partial/<digest>.json` records the durable offset, so after a
broken stream or an agent restart the push resumes from there: the bytes a client sends
twice are at most one chunk plus what was not fsynced yet. On the last byte the size and
sha256 are verified, the file is fsynced and renamed into `blobs/`. A digest mismatch
discards the partial (its bytes cannot be trusted), leaving the store as it was.

Limits hold under concurrency: the quota is checked and the new push's size reserved (its
resume record written) under one lock, so concurrent pushes together never reserve more
than the quota; at most `max_uploads` pushes run at once, and a running push that received
nothing for `idle_upload_seconds` is closed (its bytes kept for a resume) when a new push
needs its place. Engines imported from on-agent builds are counted against the quota too.

Only the agent's user may read the store: directories are 0700, files 0600 (complete
artifacts 0400), whatever the umask, and a store found with looser modes is tightened.

Blocking I/O: callers on an event loop run `Upload.write`/`finish` in a worker thread.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgewave_agent import errors, files
from edgewave_agent.diskwriter import StagedWriter

DIGEST_PATTERN = re.compile(r"[0-9a-f]{64}")
MiB = 1 << 20
_HASH_BLOCK = 4 * MiB
DIR_MODE = 0o700
FILE_MODE = 0o600
BLOB_MODE = 0o400
"""Complete artifacts: read-only, and only for the agent's user."""
# Background fdatasync of partial files, shared by every store in the process.
_SYNCERS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="store-sync")


def validate_digest(digest: str) -> str:
    """`digest` if it is 64 lowercase hex characters; InvalidDigest otherwise."""
    if not isinstance(digest, str) or not DIGEST_PATTERN.fullmatch(digest):
        shown = repr(digest[:80]) if isinstance(digest, str) else type(digest).__name__
        raise errors.InvalidDigest(
            f"digest {shown} is not a sha256 digest: send 64 lowercase hex characters,"
            " without a 'sha256:' prefix"
        )
    return digest


def sha256_file(path: Path) -> tuple[str, int]:
    """(hex digest, size) of a file, read in blocks."""
    hasher = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            hasher.update(block)
            size += len(block)
    return hasher.hexdigest(), size


@dataclass(frozen=True)
class ArtifactStat:
    digest: str
    complete: bool
    verified_offset: int
    total_size: int
    in_progress: bool = False
    received_offset: int = 0


class Upload:
    """One artifact being received; bytes arrive strictly in order.

    `accept` checks a chunk's place (cheap, on the caller's thread); `write` hashes and
    writes it (blocking). At most one `write` runs at a time.
    """

    def __init__(
        self,
        store: Store,
        *,
        digest: str,
        total_size: int,
        writer: StagedWriter,
        hasher: hashlib._Hash,
        offset: int,
    ) -> None:
        self.store = store
        self.digest = digest
        self.total_size = total_size
        self.resumed_from = offset
        self._writer = writer
        self._hasher = hasher
        self._accepted = offset
        self.written = offset
        self.durable = offset
        self._sync_requested = offset
        self._sync: concurrent.futures.Future[None] | None = None
        self._lock = threading.Lock()
        self.closed = False
        self.last_activity = store.clock()

    def accept(self, offset: int, length: int) -> None:
        """Check that a chunk continues exactly where the accepted bytes end."""
        if offset != self._accepted:
            kind = "a gap" if offset > self._accepted else "an overlap"
            raise errors.OffsetMismatch(
                f"chunk at offset {offset} of {self.digest[:12]} leaves {kind}: expected offset"
                f" {self._accepted}; resume from the offset Stat reports",
                expected_offset=self._accepted,
            )
        if offset + length > self.total_size:
            raise errors.SizeExceeded(
                f"chunk ending at {offset + length} exceeds the declared total size"
                f" {self.total_size} of {self.digest[:12]}: send exactly the declared bytes"
            )
        self._accepted = offset + length
        self.last_activity = self.store.clock()

    def write(self, data: bytes | memoryview) -> None:
        with self._lock:
            if self.closed:
                raise errors.AgentError(f"upload of {self.digest[:12]} is closed")
            self._hasher.update(data)
            self._writer.write(data)
            self.written += len(data)
            self.last_activity = self.store.clock()
            # fdatasync in the background every half checkpoint, writing on meanwhile; the
            # previous sync is complete before the next starts, so at most checkpoint_bytes
            # (plus the last write) are ever not durable.
            if self.written - self._sync_requested >= self.store.checkpoint_bytes // 2:
                self._wait_sync()
                self._writer.flush()
                self._sync_requested = self.written
                self._sync = _SYNCERS.submit(self._make_durable, self.written)

    @property
    def done(self) -> bool:
        return self.written == self.total_size

    def _make_durable(self, offset: int) -> None:
        """fdatasync the partial file, then record `offset` as durable (sidecar).

        The record is replaced atomically but not fsynced itself: whichever version a crash
        leaves claims at most what is durable (the partial was synced first), so a power
        cut costs at most one more checkpoint of re-sent bytes, and a checkpoint costs one
        disk sync instead of three.
        """
        self._writer.sync()
        record = {"total_size": self.total_size, "durable_offset": offset}
        files.atomic_write(
            self.store.sidecar_path(self.digest), json.dumps(record).encode(), durable=False
        )
        self.durable = max(self.durable, offset)

    def _wait_sync(self) -> None:
        sync, self._sync = self._sync, None
        if sync is not None:
            sync.result()

    def _checkpoint_locked(self) -> None:
        self._wait_sync()
        if self.written > self.durable:
            self._writer.flush()
            self._sync_requested = self.written
            self._make_durable(self.written)

    def suspend(self) -> None:
        """The stream broke: make every written byte durable and keep the hash state."""
        with self._lock:
            if self.closed:
                return
            if self.written > self.durable:
                self._checkpoint_locked()
            # A suspended push may never resume: keep its file, not its staging memory.
            self._writer.release_buffers()
            self._accepted = self.written
            self.store._suspend(self)

    def finish(self) -> Path:
        """Verify size and sha256, then move the artifact into the store."""
        with self._lock:
            if self.written != self.total_size:
                raise errors.SizeConflict(
                    f"{self.digest[:12]} has {self.written} of {self.total_size} bytes:"
                    " push the rest"
                )
            actual = self._hasher.hexdigest()
            if actual != self.digest:
                self._discard_locked()
                raise errors.DigestMismatch(
                    f"the {self.total_size} bytes received hash to {actual}, not the declared"
                    f" {self.digest}: the artifact is corrupt or the digest is wrong; nothing"
                    " was stored, push again from offset 0"
                )
            self._wait_sync()
            self._writer.flush()
            self._writer.sync()
            self._close_locked()
            target = self.store.blob_path(self.digest)
            partial = self.store.partial_path(self.digest)
            partial.chmod(BLOB_MODE)
            partial.replace(target)
            files.fsync_dir(target.parent)
            self.store.sidecar_path(self.digest).unlink(missing_ok=True)
            files.fsync_dir(partial.parent)
            self.store._release(self)
            return target

    def discard(self) -> None:
        with self._lock:
            self._discard_locked()

    def close(self) -> None:
        """Let go of the file (after `suspend`, to keep its bytes for a later agent)."""
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.close()

    def _discard_locked(self) -> None:
        with contextlib.suppress(OSError):
            self._wait_sync()
        self._close_locked()
        self.store.partial_path(self.digest).unlink(missing_ok=True)
        self.store.sidecar_path(self.digest).unlink(missing_ok=True)
        self.store._release(self)


class Store:
    """The artifacts of one agent, under one directory it owns exclusively."""

    def __init__(
        self,
        root: Path,
        *,
        quota_bytes: int,
        max_artifact_bytes: int | None = None,
        checkpoint_bytes: int = 16 * MiB,
        max_uploads: int = 8,
        idle_upload_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self.quota_bytes = quota_bytes
        self.max_artifact_bytes = max_artifact_bytes or quota_bytes
        self.checkpoint_bytes = checkpoint_bytes
        self.max_uploads = max_uploads
        self.idle_upload_seconds = idle_upload_seconds
        self.clock = clock
        self._blobs = root / "blobs"
        self._partial = root / "partial"
        _make_private(root, blobs=self._blobs, partial=self._partial)
        lock_fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        self._lock_file = os.fdopen(lock_fd, "a+b")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise errors.AgentError(
                f"store {root} is in use by another agent process: give each agent its own"
                " data directory"
            ) from None
        self._mutex = threading.Lock()
        self._quota_lock = threading.Lock()
        """Held from a quota check until the space it granted is recorded as reserved."""
        self._running: dict[str, Upload] = {}
        self._suspended: dict[str, Upload] = {}

    def close(self) -> None:
        with self._mutex:
            uploads = [*self._running.values(), *self._suspended.values()]
            uploads = [u for u in uploads if u is not _PLACEHOLDER]
        for upload in uploads:
            upload.suspend()
            upload.close()
        self._suspended.clear()
        self._lock_file.close()

    # Paths: derived only from validated digests.
    def blob_path(self, digest: str) -> Path:
        return self._blobs / validate_digest(digest)

    def partial_path(self, digest: str) -> Path:
        return self._partial / f"{validate_digest(digest)}.part"

    def sidecar_path(self, digest: str) -> Path:
        return self._partial / f"{validate_digest(digest)}.json"

    def has(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def size(self, digest: str) -> int:
        return self.blob_path(digest).stat().st_size

    def artifacts(self) -> dict[str, int]:
        """{digest: size} of every complete artifact."""
        held: dict[str, int] = {}
        for path in self._blobs.iterdir():
            if DIGEST_PATTERN.fullmatch(path.name):
                held[path.name] = path.stat().st_size
        return held

    def used_bytes(self) -> int:
        """Complete artifacts plus the declared size of every partial one (reserved)."""
        held = self.artifacts()
        # A finishing push is briefly both a blob and a record: count it once.
        reserved = sum(self._partial_total(d) for d in self._partial_digests() - held.keys())
        return sum(held.values()) + reserved

    def disk_free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def _partial_digests(self) -> set[str]:
        names = (p.name.removesuffix(".json") for p in self._partial.glob("*.json"))
        return {n for n in names if DIGEST_PATTERN.fullmatch(n)}

    def _read_sidecar(self, digest: str) -> tuple[int, int] | None:
        """(total_size, durable_offset) of a partial artifact, if it has a valid record."""
        try:
            record = json.loads(self.sidecar_path(digest).read_text())
            total, durable = int(record["total_size"]), int(record["durable_offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        try:
            on_disk = self.partial_path(digest).stat().st_size
        except FileNotFoundError:
            on_disk = 0
        return total, min(durable, on_disk, total)

    def _partial_total(self, digest: str) -> int:
        record = self._read_sidecar(digest)
        return record[0] if record else 0

    def stat(self, digest: str) -> ArtifactStat:
        validate_digest(digest)
        if self.has(digest):
            size = self.size(digest)
            return ArtifactStat(digest, True, size, size, False, size)
        with self._mutex:
            running = self._running.get(digest)
            suspended = self._suspended.get(digest)
        if running is _PLACEHOLDER:
            return ArtifactStat(digest, False, 0, 0, True, 0)
        if running is not None:
            return ArtifactStat(
                digest, False, running.durable, running.total_size, True, running.written
            )
        if suspended is not None:
            return ArtifactStat(
                digest, False, suspended.written, suspended.total_size, False, suspended.written
            )
        record = self._read_sidecar(digest)
        if record is None:
            return ArtifactStat(digest, False, 0, 0)
        total, durable = record
        return ArtifactStat(digest, False, durable, total, False, durable)

    def begin(self, digest: str, *, total_size: int) -> Upload:
        """Start or resume receiving `digest`; the returned upload expects `resumed_from`."""
        validate_digest(digest)
        if total_size <= 0:
            raise errors.InvalidRequest("the first chunk must declare total_size > 0")
        if total_size > self.max_artifact_bytes:
            raise errors.SizeExceeded(
                f"artifact of {total_size} bytes exceeds this agent's limit of"
                f" {self.max_artifact_bytes} bytes: raise store.max_artifact_bytes"
            )
        self.close_idle_uploads()
        with self._mutex:
            if digest in self._running:
                raise errors.PushInProgress(
                    f"a push of {digest[:12]} is already running: wait for it (Stat shows its"
                    " progress) and retry",
                    retry_after=2.0,
                )
            if len(self._running) >= self.max_uploads:
                raise errors.PushInProgress(
                    f"this agent is receiving {len(self._running)} pushes already, its limit:"
                    " retry when one has finished",
                    retry_after=2.0,
                )
            suspended = self._suspended.pop(digest, None)
            if suspended is not None:
                if suspended.total_size != total_size:
                    self._suspended[digest] = suspended
                    raise self._size_conflict(
                        digest, held=suspended.total_size, declared=total_size
                    )
                self._running[digest] = suspended
                suspended.resumed_from = suspended.written
                return suspended
            self._running[digest] = _PLACEHOLDER
        try:
            upload = self._open(digest, total_size=total_size)
        except BaseException:
            with self._mutex:
                self._running.pop(digest, None)
            raise
        with self._mutex:
            self._running[digest] = upload
        return upload

    def close_idle_uploads(self) -> list[str]:
        """Close running pushes that received nothing for `idle_upload_seconds`.

        Their bytes are made durable and kept, so the push can resume; the stream that held
        the upload fails on its next chunk. Returns the digests closed.
        """
        deadline = self.clock() - self.idle_upload_seconds
        with self._mutex:
            idle = [
                u
                for u in self._running.values()
                if u is not _PLACEHOLDER and u.last_activity < deadline
            ]
        for upload in idle:
            upload.suspend()
            upload.close()
            with self._mutex:
                if self._suspended.get(upload.digest) is upload:
                    # A resume opens the partial afresh from its record.
                    del self._suspended[upload.digest]
        return [upload.digest for upload in idle]

    def _size_conflict(self, digest: str, *, held: int, declared: int) -> errors.SizeConflict:
        return errors.SizeConflict(
            f"a partial {digest[:12]} of declared size {held} exists but this push declares"
            f" {declared}: the digest names one artifact; check the size you send"
        )

    def _open(self, digest: str, *, total_size: int) -> Upload:
        record = self._read_sidecar(digest)
        partial = self.partial_path(digest)
        if record is not None and record[0] != total_size:
            raise self._size_conflict(digest, held=record[0], declared=total_size)
        durable = record[1] if record is not None else 0
        if record is None:
            # Check and reserve in one step: the resume record is the reservation.
            with self._quota_lock:
                self._check_space(total_size, durable=0, reserved_here=0)
                record_data = {"total_size": total_size, "durable_offset": 0}
                files.atomic_write(self.sidecar_path(digest), json.dumps(record_data).encode())
        else:
            self._check_space(total_size, durable=durable, reserved_here=total_size)
        hasher = hashlib.sha256()
        if durable:
            # The durable bytes are hashed again: the hash state did not survive the restart.
            with partial.open("rb") as handle:
                remaining = durable
                while remaining and (block := handle.read(min(_HASH_BLOCK, remaining))):
                    hasher.update(block)
                    remaining -= len(block)
            durable -= remaining
        try:
            writer = StagedWriter(partial, offset=durable)
        except BaseException:
            if record is None:  # give back the reservation made above
                self.sidecar_path(digest).unlink(missing_ok=True)
            raise
        return Upload(
            self, digest=digest, total_size=total_size, writer=writer, hasher=hasher, offset=durable
        )

    def _check_space(self, total_size: int, *, durable: int, reserved_here: int) -> None:
        available = self.quota_bytes - (self.used_bytes() - reserved_here)
        if total_size > available:
            raise errors.QuotaExceeded(
                f"artifact of {total_size} bytes does not fit the store quota"
                f" ({available} of {self.quota_bytes} bytes free): remove unused versions or"
                " raise store.quota_bytes",
                retry_after=30.0,
            )
        if total_size - durable > self.disk_free_bytes():
            raise errors.QuotaExceeded(
                f"disk under {self.root} has less than the {total_size - durable} bytes needed",
                retry_after=30.0,
            )

    def _suspend(self, upload: Upload) -> None:
        with self._mutex:
            if self._running.get(upload.digest) is upload:
                del self._running[upload.digest]
            self._suspended[upload.digest] = upload

    def _release(self, upload: Upload) -> None:
        with self._mutex:
            if self._running.get(upload.digest) is upload:
                del self._running[upload.digest]
            if self._suspended.get(upload.digest) is upload:
                del self._suspended[upload.digest]

    def drop_stale_partials(self, *, older_than: float) -> int:
        """Delete partial artifacts no push touched since `older_than` (a Unix time).

        An abandoned push would otherwise reserve its declared size in the quota forever.
        Returns the bytes freed.
        """
        freed = 0
        with self._mutex:
            running = set(self._running)
        for digest in self._partial_digests() - running:
            sidecar = self.sidecar_path(digest)
            try:
                if sidecar.stat().st_mtime >= older_than:
                    continue
            except FileNotFoundError:
                continue
            with self._mutex:
                suspended = self._suspended.pop(digest, None)
            if suspended is not None:
                freed += suspended.written
                suspended.discard()
                continue
            partial = self.partial_path(digest)
            with contextlib.suppress(FileNotFoundError):
                freed += partial.stat().st_size
                partial.unlink()
            sidecar.unlink(missing_ok=True)
        return freed

    def delete(self, digest: str) -> int:
        """Delete a complete artifact; returns the bytes freed (0 if absent)."""
        path = self.blob_path(digest)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return 0
        path.unlink()
        files.fsync_dir(path.parent)
        return size

    def import_file(self, source: Path) -> tuple[str, int]:
        """Copy a local file (e.g. an engine built here) into the store; (digest, size)."""
        digest, size = sha256_file(source)
        if self.has(digest):
            return digest, size
        temp = self._partial / f".import-{digest}.tmp"
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        # The copy's bytes count as used while it lands (it is named like no partial), so
        # check and copy under the quota lock: a concurrent push cannot take the same space.
        with self._quota_lock:
            self._check_space(size, durable=0, reserved_here=0)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
            with os.fdopen(fd, "wb") as out, source.open("rb") as handle:
                shutil.copyfileobj(handle, out, _HASH_BLOCK)
                out.flush()
                os.fsync(out.fileno())
            temp.chmod(BLOB_MODE)
            temp.replace(self.blob_path(digest))
        files.fsync_dir(self._blobs)
        return digest, size


def _make_private(root: Path, *, blobs: Path, partial: Path) -> None:
    """Create the store's directories 0700 and tighten what an older agent left looser."""
    for directory in (root, blobs, partial):
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        directory.chmod(DIR_MODE)  # mkdir's mode is filtered by the umask; exist_ok keeps old
    for path in blobs.iterdir():
        if path.is_file() and not path.is_symlink():
            path.chmod(BLOB_MODE)
    for path in (*partial.iterdir(), root / ".lock"):
        if path.is_file() and not path.is_symlink():
            path.chmod(FILE_MODE)


# Marks a digest as taken while its partial file is being opened (and maybe re-hashed).
_PLACEHOLDER: Upload = object.__new__(Upload)
