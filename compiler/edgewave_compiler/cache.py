"""The engine cache: a content-addressed directory of built engines, keyed by build key digest.

Layout under the root (a local directory, or a PVC mounted by the operator):

    engines/<key digest>/engine.<ext>   the artifact
    engines/<key digest>/meta.json      EngineRecord: key, digest, size, toolchain, build log
    engines/<key digest>/last_used      clock value of the last hit (LRU order)
    locks/<key digest>.lock             fcntl lock: one builder per key across processes
    refs/<rollout uid>/<key digest>     a live rollout still needs this engine
    agents/<agent>/<key digest>.json    engines agents built for themselves (record only)
    tmp/                                staging; entries appear by one directory rename

An entry exists once its directory is renamed into `engines/`, so readers never see half an
engine. Two processes asking for the same key serialize on its lock and the second finds
the first one's engine. Eviction removes least-recently-used entries until the store fits
its size bound, skipping any entry a rollout references or another process holds locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pydantic

from edgewave_compiler import building, errors, keys

CENTRAL = "central"
AGENT_PREFIX = "agent:"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
MAX_LOG_CHARS = 256 * 1024
STAGING_MAX_AGE_S = 24 * 3600.0
"""Staging older than this belongs to a process that died mid-build."""


class EngineRecord(pydantic.BaseModel):
    """What the cache knows about one built engine (central) or one agent's own build."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

    key: keys.BuildKey
    key_digest: str
    engine_digest: str
    engine_path: Path | None
    """None for an engine an agent built for itself: it lives only on that agent."""
    size_bytes: int
    build_seconds: float
    built_at: float
    built_where: str
    """`central`, or `agent:<name>` for an engine built on that agent."""
    toolchain: dict[str, str] = pydantic.Field(default_factory=dict)
    log: str = ""
    cache_hit: bool = False

    @property
    def built_on_agent(self) -> str | None:
        if self.built_where.startswith(AGENT_PREFIX):
            return self.built_where.removeprefix(AGENT_PREFIX)
        return None


def _check_name(value: str, *, what: str) -> str:
    if not _NAME.match(value):
        raise errors.PermanentError(
            f"{what} {value!r} cannot name a cache file: use letters, digits, '.', '_' or '-'"
        )
    return value


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    Path(tmp).replace(path)


class KeyLock:
    """An exclusive fcntl lock on one key's lock file; released on close."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> KeyLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class EngineCache:
    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.clock = clock
        self.builds = 0
        """Engines this instance stored from a build (not from a cache hit)."""
        for sub in ("engines", "locks", "refs", "agents", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.sweep_staging()

    # -- paths and locks ---------------------------------------------------------------

    def entry_dir(self, key_digest: str) -> Path:
        return self.root / "engines" / key_digest

    def _lock_fd(self, key_digest: str) -> int:
        return os.open(self.root / "locks" / f"{key_digest}.lock", os.O_RDWR | os.O_CREAT, 0o644)

    def lock(self, key: keys.BuildKey) -> KeyLock:
        """Block until this process holds the key's lock (use as a context manager)."""
        fd = self._lock_fd(key.digest())
        fcntl.flock(fd, fcntl.LOCK_EX)
        return KeyLock(fd)

    def try_lock(self, key_digest: str) -> KeyLock | None:
        fd = self._lock_fd(key_digest)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return KeyLock(fd)

    def staging_dir(self) -> Path:
        """A fresh directory on the cache's filesystem for a build to write into."""
        return Path(tempfile.mkdtemp(dir=self.root / "tmp", prefix="build-"))

    def sweep_staging(self, *, older_than_s: float = STAGING_MAX_AGE_S) -> list[str]:
        """Remove staging left by processes that died mid-build (older than any live build)."""
        removed: list[str] = []
        cutoff = self.clock() - older_than_s
        for leftover in (self.root / "tmp").iterdir():
            with contextlib.suppress(FileNotFoundError):
                if leftover.lstat().st_mtime < cutoff:
                    if leftover.is_dir():
                        shutil.rmtree(leftover, ignore_errors=True)
                    else:
                        leftover.unlink()
                    removed.append(leftover.name)
        return removed

    # -- reading -----------------------------------------------------------------------

    def read(self, key_digest: str) -> EngineRecord | None:
        """The entry's record as stored, without touching LRU order or taking the lock."""
        meta = self.entry_dir(key_digest) / "meta.json"
        try:
            return EngineRecord.model_validate_json(meta.read_text())
        except FileNotFoundError:
            return None

    def _touch(self, key_digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            _write_atomic(self.entry_dir(key_digest) / "last_used", repr(self.clock()))

    def _last_used(self, key_digest: str, record: EngineRecord) -> float:
        try:
            return float((self.entry_dir(key_digest) / "last_used").read_text())
        except (FileNotFoundError, ValueError):
            return record.built_at

    def lookup(self, key: keys.BuildKey, *, rollout_uid: str | None = None) -> EngineRecord | None:
        """The cached engine for `key` (marked used, referenced by `rollout_uid`), or None."""
        digest = key.digest()
        if not (self.entry_dir(digest) / "meta.json").exists():
            return None
        with self.lock(key):
            record = self.read(digest)
            if record is None:
                return None
            self._touch(digest)
            if rollout_uid is not None:
                self._add_ref(digest, rollout_uid)
        return record.model_copy(update={"cache_hit": True})

    def entries(self) -> list[EngineRecord]:
        found: list[EngineRecord] = []
        for entry in sorted((self.root / "engines").iterdir()):
            record = self.read(entry.name)
            if record is not None:
                found.append(record)
        return found

    def total_bytes(self) -> int:
        return sum(record.size_bytes for record in self.entries())

    # -- writing -----------------------------------------------------------------------

    def store(
        self, key: keys.BuildKey, output: building.BuildOutput, *, built_where: str = CENTRAL
    ) -> EngineRecord:
        """Move a finished build into the cache. The caller holds the key's lock."""
        digest = key.digest()
        entry = Path(tempfile.mkdtemp(dir=self.root / "tmp", prefix="entry-"))
        try:
            engine = entry / f"engine{output.artifact.suffix}"
            output.artifact.replace(engine)
            record = EngineRecord(
                key=key,
                key_digest=digest,
                engine_digest=output.digest,
                engine_path=self.entry_dir(digest) / engine.name,
                size_bytes=output.size_bytes,
                build_seconds=output.build_seconds,
                built_at=self.clock(),
                built_where=built_where,
                toolchain=dict(output.toolchain),
                log=output.log[-MAX_LOG_CHARS:],
            )
            (entry / "meta.json").write_text(record.model_dump_json(indent=2))
            (entry / "last_used").write_text(repr(record.built_at))
            final = self.entry_dir(digest)
            if final.exists():
                self._discard(final)
            entry.replace(final)
        finally:
            shutil.rmtree(entry, ignore_errors=True)
        self.builds += 1
        return record

    def get_or_build(
        self,
        key: keys.BuildKey,
        build: Callable[[Path], building.BuildOutput],
        *,
        rollout_uid: str | None = None,
    ) -> EngineRecord:
        """The cached engine, or build it once (`build(staging_dir)`) while holding the lock."""
        record = self.lookup(key, rollout_uid=rollout_uid)
        if record is not None:
            return record
        digest = key.digest()
        with self.lock(key):
            existing = self.read(digest)
            if existing is not None:
                self._touch(digest)
                if rollout_uid is not None:
                    self._add_ref(digest, rollout_uid)
                return existing.model_copy(update={"cache_hit": True})
            staging = self.staging_dir()
            try:
                record = self.store(key, build(staging))
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            if rollout_uid is not None:
                self._add_ref(digest, rollout_uid)
        self.enforce_bound(keep=frozenset({digest}))
        return record

    # -- references --------------------------------------------------------------------

    def _add_ref(self, key_digest: str, rollout_uid: str) -> None:
        folder = self.root / "refs" / _check_name(rollout_uid, what="rollout uid")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / key_digest).touch()

    def add_ref(self, key: keys.BuildKey, rollout_uid: str) -> None:
        """Pin `key`'s engine for a live rollout (eviction skips pinned engines)."""
        with self.lock(key):
            self._add_ref(key.digest(), rollout_uid)

    def release(self, rollout_uid: str) -> list[str]:
        """Drop every pin a rollout holds (on delete or supersede); returns the key digests."""
        folder = self.root / "refs" / _check_name(rollout_uid, what="rollout uid")
        if not folder.exists():
            return []
        released = sorted(path.name for path in folder.iterdir())
        shutil.rmtree(folder, ignore_errors=True)
        return released

    def references(self) -> dict[str, frozenset[str]]:
        """Key digest -> rollout uids that pin it."""
        pins: dict[str, set[str]] = {}
        for folder in (self.root / "refs").iterdir():
            for ref in folder.iterdir():
                pins.setdefault(ref.name, set()).add(folder.name)
        return {digest: frozenset(uids) for digest, uids in pins.items()}

    # -- eviction ----------------------------------------------------------------------

    def _discard(self, entry: Path) -> None:
        doomed = Path(tempfile.mkdtemp(dir=self.root / "tmp", prefix="evict-"))
        entry.replace(doomed / "entry")
        shutil.rmtree(doomed, ignore_errors=True)

    def evict(self, *, max_bytes: int, keep: frozenset[str] = frozenset()) -> list[str]:
        """Remove unpinned entries, least recently used first, until the total fits `max_bytes`."""
        records = self.entries()
        total = sum(record.size_bytes for record in records)
        if total <= max_bytes:
            return []
        ordered = sorted(records, key=lambda r: (self._last_used(r.key_digest, r), r.key_digest))
        evicted: list[str] = []
        for record in ordered:
            if total <= max_bytes:
                break
            digest = record.key_digest
            if digest in keep:
                continue
            held = self.try_lock(digest)
            if held is None:
                continue
            with held:
                if digest in self.references() or self.read(digest) is None:
                    continue
                self._discard(self.entry_dir(digest))
            total -= record.size_bytes
            evicted.append(digest)
        return evicted

    def enforce_bound(self, *, keep: frozenset[str] = frozenset()) -> list[str]:
        return [] if self.max_bytes is None else self.evict(max_bytes=self.max_bytes, keep=keep)

    # -- engines agents built for themselves -------------------------------------------

    def _agent_path(self, key_digest: str, agent: str) -> Path:
        return self.root / "agents" / _check_name(agent, what="agent name") / f"{key_digest}.json"

    def record_agent_build(
        self,
        key: keys.BuildKey,
        *,
        agent: str,
        engine_digest: str,
        size_bytes: int,
        build_seconds: float,
        log: str = "",
        toolchain: dict[str, str] | None = None,
    ) -> EngineRecord:
        """Remember that `agent` built `key` itself and what it reported."""
        digest = key.digest()
        path = self._agent_path(digest, agent)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = EngineRecord(
            key=key,
            key_digest=digest,
            engine_digest=engine_digest,
            engine_path=None,
            size_bytes=size_bytes,
            build_seconds=build_seconds,
            built_at=self.clock(),
            built_where=f"{AGENT_PREFIX}{agent}",
            toolchain=dict(toolchain or {}),
            log=log[-MAX_LOG_CHARS:],
        )
        _write_atomic(path, record.model_dump_json(indent=2))
        return record

    def agent_build(self, key: keys.BuildKey, *, agent: str) -> EngineRecord | None:
        try:
            text = self._agent_path(key.digest(), agent).read_text()
        except FileNotFoundError:
            return None
        return EngineRecord.model_validate_json(text).model_copy(update={"cache_hit": True})

    def forget_agent(self, agent: str) -> None:
        """Drop an agent's build records (the agent was wiped or removed)."""
        shutil.rmtree(
            self.root / "agents" / _check_name(agent, what="agent name"), ignore_errors=True
        )
