"""Fetch a model by URI, within limits: the URI is hostile input, and so is the server.

Whoever writes a ModelRollout chooses `spec.model.uri`, and the operator fetches it with the
operator pod's network position and files. So a fetch is bounded by a `FetchPolicy`:

- a maximum size (default 2 GiB: an ONNX file with every tensor embedded cannot be larger,
  and intake refuses external data), checked against Content-Length before reading and
  against the bytes actually received while streaming to disk;
- one overall deadline for the whole download (redirects included), and a read timeout;
- `http`/`https` only, at most `MAX_REDIRECTS` redirects, each to an allowed scheme and never
  from https down to http;
- never to a forbidden address (`address_refusal`: link-local and cloud metadata addresses
  such as 169.254.169.254 and fd00:ec2::254, unspecified, multicast, and loopback unless
  allowed), checked on every address a name resolves to, and the connection then made to
  the address that was checked (no second lookup a rebinding DNS server could answer);
- `file://` (or a bare path) only for regular files below `file_root`; none without one;
- a `cancel` event checked between chunks, so a superseded rollout stops its download.

Digest errors never echo the digest of what arrived (that would be an oracle for the
content of any file or URL the operator can reach); `fetch` writes through a temporary file
and a rename into `<dest_dir>/<sha256>.onnx`, so a partial or refused download leaves nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import ipaddress
import os
import socket
import ssl
import stat
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edgewave_compiler import errors

CHUNK_BYTES = 1 << 20
MAX_REDIRECTS = 5
DEFAULT_MAX_BYTES = 2 << 30
DEFAULT_DEADLINE_S = 1800.0
SCHEMES = ("http", "https")

# Cloud metadata services on addresses the categories below do not already cover.
_METADATA = (
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS IMDS over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Source(Protocol):
    def read1(self, size: int = ..., /) -> bytes:
        """At most `size` bytes from at most one underlying read (a dribbling server cannot
        hold one call open past the read timeout)."""
        ...


@dataclass(frozen=True)
class Opened:
    source: Source
    length: int | None
    """Declared length (Content-Length or the file's size), when known."""
    set_timeout: Callable[[float], None]
    """Bounds the next read (a no-op for files)."""


def _no_timeout(seconds: float) -> None:
    del seconds


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int = DEFAULT_MAX_BYTES
    deadline_s: float = DEFAULT_DEADLINE_S
    """The whole download, redirects included, ends within this many seconds."""
    read_timeout_s: float = 60.0
    """One connect or read may wait at most this long (and never past the deadline)."""
    file_root: Path | None = None
    """`file://` URIs (and bare paths) must name a regular file below this directory;
    with None they are refused."""
    allow_loopback: bool = False
    """Loopback addresses reach the fetching process's own ports: for tests and the CLI."""


LOCAL_USER = FetchPolicy(file_root=Path("/"), allow_loopback=True)
"""For the command line, which fetches with its own user's rights for that user."""


def address_refusal(address: IpAddress, *, allow_loopback: bool) -> str | None:
    """Why a fetch may not connect to `address`, or None when it may. Pure."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    rules = (
        (any(address in network for network in _METADATA), "a cloud metadata address"),
        (address.is_link_local, "a link-local address (cloud metadata lives there)"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_multicast, "a multicast address"),
        (
            address.is_loopback and not allow_loopback,
            "a loopback address (the fetcher's own ports)",
        ),
    )
    return next((reason for refused, reason in rules if refused), None)


class _Deadline:
    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._end = clock() + seconds
        self.seconds = seconds

    def left(self, *, uri: str) -> float:
        left = self._end - self._clock()
        if left <= 0:
            raise errors.ModelFetchError(
                f"download of {uri} ran past its {self.seconds:g}s deadline and was stopped;"
                " will retry. Serve the model from somewhere faster or raise the deadline"
            )
        return left


def _resolve(host: str, port: int, *, policy: FetchPolicy, uri: str) -> tuple[str, int]:
    """One address of `host` to connect to, after checking every address it resolves to."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise errors.ModelFetchError(
            f"cannot resolve the host of {uri} ({error.strerror}); will retry"
        ) from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        refusal = address_refusal(address, allow_loopback=policy.allow_loopback)
        if refusal is not None:
            raise errors.UnsupportedUri(
                f"cannot fetch {uri}: {host} is {refusal} ({address}), which model fetches may"
                " not reach; serve the model from another address"
            )
    sockaddr = infos[0][4]
    return str(sockaddr[0]), int(sockaddr[1])


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to an address checked beforehand, not to a fresh lookup."""

    def __init__(self, host: str, port: int, *, address: tuple[str, int], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection(self._address, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """An HTTPS connection to a checked address; the certificate is checked for `host`."""

    def __init__(self, host: str, port: int, *, address: tuple[str, int], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection(self._address, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _connect(
    uri: str, *, policy: FetchPolicy, deadline: _Deadline
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    parsed = urllib.parse.urlsplit(uri)
    host = parsed.hostname or ""
    if not host:
        raise errors.UnsupportedUri(f"cannot fetch {uri}: it names no host")
    https = parsed.scheme == "https"
    try:
        port = parsed.port or (443 if https else 80)
    except ValueError:
        raise errors.UnsupportedUri(f"cannot fetch {uri}: its port is not a number") from None
    address = _resolve(host, port, policy=policy, uri=uri)
    timeout = min(policy.read_timeout_s, deadline.left(uri=uri))
    kind = _PinnedHTTPS if https else _PinnedHTTP
    connection = kind(host, port, address=address, timeout=timeout)
    target = urllib.parse.urlunsplit(("", "", parsed.path or "/", parsed.query, ""))
    try:
        connection.request("GET", target, headers={"User-Agent": "edgewave-compiler"})
        return connection, connection.getresponse()
    except (OSError, http.client.HTTPException) as error:
        connection.close()
        raise errors.ModelFetchError(
            f"cannot reach {uri} ({error}); will retry. Check the URL and the network"
        ) from None


def _redirect(uri: str, location: str | None) -> str:
    if not location:
        raise errors.ModelFetchError(f"{uri} redirects without a Location; will retry")
    target = urllib.parse.urljoin(uri, location)
    scheme = urllib.parse.urlsplit(target).scheme
    if scheme not in SCHEMES:
        raise errors.UnsupportedUri(
            f"cannot fetch {uri}: it redirects to scheme {scheme!r}; model fetches follow"
            " redirects to http:// and https:// only"
        )
    if urllib.parse.urlsplit(uri).scheme == "https" and scheme == "http":
        raise errors.UnsupportedUri(
            f"cannot fetch {uri}: it redirects from https to plain http; serve the model over https"
        )
    return target


@contextlib.contextmanager
def _open_http(uri: str, *, policy: FetchPolicy, deadline: _Deadline) -> Iterator[Opened]:
    current = uri
    for _ in range(MAX_REDIRECTS + 1):
        connection, response = _connect(current, policy=policy, deadline=deadline)
        with contextlib.closing(connection), contextlib.closing(response):
            if response.status in (301, 302, 303, 307, 308):
                current = _redirect(current, response.getheader("Location"))
                continue
            if response.status in (401, 403, 404, 410):
                raise errors.ModelNotFound(
                    f"fetching {uri} failed with HTTP {response.status} {response.reason}: fix"
                    " spec.model.uri or make the model readable by the operator"
                )
            if response.status != 200:
                raise errors.ModelFetchError(
                    f"fetching {uri} failed with HTTP {response.status} {response.reason};"
                    " will retry",
                    retry_after=30.0,
                )
            length = response.getheader("Content-Length")
            sock = connection.sock
            yield Opened(
                source=response,
                length=int(length) if length and length.isdigit() else None,
                set_timeout=sock.settimeout if sock is not None else _no_timeout,
            )
            return
    raise errors.UnsupportedUri(
        f"cannot fetch {uri}: more than {MAX_REDIRECTS} redirects; point uri at the model itself"
    )


@contextlib.contextmanager
def _open_file(uri: str, *, policy: FetchPolicy) -> Iterator[Opened]:
    parsed = urllib.parse.urlsplit(uri)
    path = Path(urllib.request.url2pathname(parsed.path) if parsed.scheme else uri)
    if policy.file_root is None:
        raise errors.UnsupportedUri(
            f"cannot fetch {uri}: file:// model URIs are off here; serve the model over https"
            " or configure a model root (EDGEWAVE_MODEL_ROOT) that holds it"
        )
    root = policy.file_root.resolve()
    try:
        resolved = path.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        raise errors.ModelNotFound(
            f"model file {path} does not exist: fix spec.model.uri or copy the model there"
        ) from None
    if not resolved.is_relative_to(root):
        raise errors.UnsupportedUri(
            f"cannot fetch {uri}: file:// model URIs must name a file below the model root"
            f" {root}; copy the model there"
        )
    try:
        # Non-blocking: opening a FIFO for reading would otherwise wait for a writer forever.
        fd = os.open(resolved, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise errors.ModelNotFound(f"cannot read model file {path}: {error.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise errors.UnsupportedUri(f"cannot fetch {uri}: it is not a regular file")
        os.set_blocking(fd, True)
        yield Opened(source=handle, length=info.st_size, set_timeout=_no_timeout)


@contextlib.contextmanager
def _open(uri: str, *, policy: FetchPolicy, deadline: _Deadline) -> Iterator[Opened]:
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme in ("", "file"):
        with _open_file(uri, policy=policy) as opened:
            yield opened
    elif scheme in SCHEMES:
        with _open_http(uri, policy=policy, deadline=deadline) as opened:
            yield opened
    else:
        raise errors.UnsupportedUri(
            f"cannot fetch {uri}: scheme {scheme!r} is not supported; use https://, http:// or"
            " file:// (below the model root)"
        )


def _too_large(uri: str, *, size: int, policy: FetchPolicy) -> errors.ModelTooLarge:
    return errors.ModelTooLarge(
        f"model {uri} is {size} bytes or more, over the limit of {policy.max_bytes} bytes;"
        " shrink the model or raise the limit (EDGEWAVE_MAX_MODEL_BYTES)"
    )


def model_file(dest_dir: Path, *, uri: str, sha256: str) -> Path:
    """Where the bytes `uri` yielded for `sha256` are kept: keyed by both.

    Keyed by the digest alone, a rollout that knew another tenant's model digest could name
    it with any uri (one it cannot read, or one that serves other bytes) and be handed the
    other tenant's model, and through it the cached engines built from it. Keyed by (uri,
    digest), a rollout reaches a cached model only through a uri that has itself yielded
    those bytes; any other uri is fetched and verified first.
    """
    uri_tag = hashlib.sha256(uri.encode()).hexdigest()[:32]
    return dest_dir / f"{sha256.lower()}-{uri_tag}.onnx"


def fetch(
    uri: str,
    *,
    sha256: str,
    dest_dir: Path,
    policy: FetchPolicy,
    cancel: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Path:
    """Stream `uri` into `model_file(dest_dir, ...)` within `policy`; refuse it unless the
    digest matches. Blocking: run it in a thread and set `cancel` to stop it between chunks.

    A copy already fetched is reused only for the same uri (see `model_file`)."""
    expected = sha256.lower()
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = model_file(dest_dir, uri=uri, sha256=expected)
    if final.exists():
        return final
    deadline = _Deadline(policy.deadline_s, clock)
    digest = hashlib.sha256()
    received = 0
    fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=".fetch-", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with (
            os.fdopen(fd, "wb") as out,
            _open(uri, policy=policy, deadline=deadline) as opened,
        ):
            length = opened.length
            if length is not None and length > policy.max_bytes:
                raise _too_large(uri, size=length, policy=policy)
            while True:
                if cancel is not None and cancel.is_set():
                    raise errors.ModelFetchError(f"download of {uri} was cancelled")
                opened.set_timeout(min(policy.read_timeout_s, deadline.left(uri=uri)))
                try:
                    chunk = opened.source.read1(CHUNK_BYTES)
                except (TimeoutError, http.client.HTTPException, OSError) as error:
                    deadline.left(uri=uri)
                    raise errors.ModelFetchError(
                        f"download of {uri} broke after {received} bytes ({error}); will retry"
                    ) from None
                if not chunk:
                    break
                received += len(chunk)
                if received > policy.max_bytes:
                    raise _too_large(uri, size=received, policy=policy)
                digest.update(chunk)
                out.write(chunk)
            if length is not None and received < length:
                raise errors.ModelFetchError(
                    f"download of {uri} ended after {received} of {length} bytes; will retry"
                )
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != expected:
            raise errors.DigestMismatch(uri=uri, expected=expected)
        tmp.replace(final)
    finally:
        tmp.unlink(missing_ok=True)
    return final
