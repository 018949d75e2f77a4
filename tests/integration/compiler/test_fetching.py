"""Model fetch within limits, against a real HTTP server on loopback.

Size, deadline, cancellation, redirects (schemes, forbidden addresses, count), file:// below
the model root, and digest errors that never echo what arrived. Forbidden addresses are
refused before any connection, so no packet leaves loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import ipaddress
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgewave_compiler import cache, compiling, errors, fetching, samples

GOOD = samples.matmul_relu().SerializeToString()
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()
OTHER_SHA = hashlib.sha256(b"another model").hexdigest()
DRIBBLE_BYTES = 200
DRIBBLE_PAUSE_S = 0.02

REDIRECTS = {
    "/to-model": "/model.onnx",
    "/to-metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "/to-metadata-v6": "http://[fd00:ec2::254]/latest/meta-data/",
    "/to-mapped-metadata": "http://[::ffff:169.254.169.254]/",
    "/to-file": "file:///var/run/secrets/kubernetes.io/serviceaccount/token",
    "/to-ftp": "ftp://models.example/model.onnx",
    "/loop": "/loop",
}

LOOPBACK_OK = fetching.FetchPolicy(allow_loopback=True, deadline_s=30.0, read_timeout_s=10.0)


class Handler(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        Handler.hits.append(self.path)
        if self.path in REDIRECTS:
            self.send_response(302)
            self.send_header("Location", REDIRECTS[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/model.onnx":
            self._send(GOOD)
        elif self.path == "/short.onnx":
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            self.wfile.write(GOOD[:50])
        elif self.path == "/no-length":
            # No Content-Length: the size is known only by counting what arrives.
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(GOOD)
            self.close_connection = True
        elif self.path == "/slow":
            self._dribble()
        elif self.path == "/broken":
            self.send_error(503, "maintenance")
        else:
            self.send_error(404, "no such model")

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _dribble(self) -> None:
        """One byte at a time: each read is quick, the whole download is not."""
        self.send_response(200)
        self.send_header("Content-Length", str(DRIBBLE_BYTES))
        self.end_headers()
        for _ in range(DRIBBLE_BYTES):
            try:
                self.wfile.write(b"x")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(DRIBBLE_PAUSE_S)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def fetch(
    uri: str,
    dest: Path,
    *,
    policy: fetching.FetchPolicy = LOOPBACK_OK,
    sha256: str = GOOD_SHA,
    cancel: threading.Event | None = None,
) -> Path:
    return fetching.fetch(uri, sha256=sha256, dest_dir=dest, policy=policy, cancel=cancel)


def test_fetch_over_http_is_content_addressed(server: str, tmp_path: Path) -> None:
    path = fetch(f"{server}/model.onnx", tmp_path)
    assert path == fetching.model_file(tmp_path, uri=f"{server}/model.onnx", sha256=GOOD_SHA)
    assert path.name.startswith(f"{GOOD_SHA}-")
    assert path.read_bytes() == GOOD
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_cached_model_is_reached_only_through_a_uri_that_yielded_it(
    server: str, tmp_path: Path
) -> None:
    """Knowing another tenant's digest is not enough: another uri is fetched and verified."""
    fetch(f"{server}/model.onnx", tmp_path)
    Handler.hits.clear()
    with pytest.raises(errors.ModelNotFound, match="HTTP 404"):
        fetch(f"{server}/missing.onnx", tmp_path)
    with pytest.raises(errors.ModelFetchError):
        fetch(f"{server}/short.onnx", tmp_path)
    assert Handler.hits == ["/missing.onnx", "/short.onnx"]
    # The uri that yielded the bytes is served from the cache, without a request.
    assert fetch(f"{server}/model.onnx", tmp_path).read_bytes() == GOOD
    assert Handler.hits == ["/missing.onnx", "/short.onnx"]


def test_a_redirect_within_http_is_followed(server: str, tmp_path: Path) -> None:
    assert fetch(f"{server}/to-model", tmp_path).read_bytes() == GOOD


@pytest.mark.parametrize(
    ("path", "error", "temporary", "words"),
    [
        ("/missing.onnx", errors.ModelNotFound, False, "HTTP 404"),
        ("/broken", errors.ModelFetchError, True, "HTTP 503"),
        ("/short.onnx", errors.ModelFetchError, True, "will retry"),
    ],
)
def test_http_failures_are_classified(
    server: str,
    tmp_path: Path,
    *,
    path: str,
    error: type[errors.EdgewaveError],
    temporary: bool,
    words: str,
) -> None:
    with pytest.raises(error) as caught:
        fetch(f"{server}{path}", tmp_path)
    assert caught.value.temporary is temporary
    assert words in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_is_temporary(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(errors.ModelFetchError, match="cannot reach") as caught:
        fetch(f"http://127.0.0.1:{port}/m.onnx", tmp_path)
    assert caught.value.temporary


@pytest.mark.parametrize("path", ["/model.onnx", "/no-length"], ids=["declared", "counted"])
def test_oversize_models_are_refused_and_leave_nothing(
    server: str, tmp_path: Path, path: str
) -> None:
    policy = fetching.FetchPolicy(allow_loopback=True, max_bytes=len(GOOD) - 1)
    with pytest.raises(errors.ModelTooLarge, match=f"over the limit of {len(GOOD) - 1} bytes"):
        fetch(f"{server}{path}", tmp_path, policy=policy)
    assert list(tmp_path.iterdir()) == []


def test_a_slow_download_stops_at_its_deadline(server: str, tmp_path: Path) -> None:
    # Each byte arrives well within the read timeout; only the overall deadline stops it.
    policy = fetching.FetchPolicy(allow_loopback=True, deadline_s=0.3, read_timeout_s=10.0)
    with pytest.raises(errors.ModelFetchError, match=r"ran past its 0\.3s deadline") as caught:
        fetch(f"{server}/slow", tmp_path, policy=policy)
    assert caught.value.temporary
    assert list(tmp_path.iterdir()) == []


def test_cancel_stops_a_download(server: str, tmp_path: Path) -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.2, cancel.set)
    timer.start()
    try:
        with pytest.raises(errors.ModelFetchError, match="cancelled"):
            fetch(f"{server}/slow", tmp_path, cancel=cancel)
    finally:
        timer.cancel()
    assert list(tmp_path.iterdir()) == []


def test_cancelling_the_rollouts_fetch_stops_the_download(server: str, tmp_path: Path) -> None:
    compiler = compiling.Compiler(cache.EngineCache(tmp_path / "cache"), fetch_policy=LOOPBACK_OK)
    models = tmp_path / "models"

    async def scenario() -> None:
        task = asyncio.create_task(
            compiler.fetch_model(f"{server}/slow", sha256=GOOD_SHA, dest_dir=models)
        )
        for _ in range(200):  # until the download has started writing
            if models.exists() and any(models.iterdir()):
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    # fetch_model returns only after the download thread ended and removed its file.
    assert list(models.iterdir()) == []


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/to-metadata", "link-local address"),
        ("/to-metadata-v6", "cloud metadata address"),
        ("/to-mapped-metadata", "link-local address"),
        ("/to-file", "redirects to scheme 'file'"),
        ("/to-ftp", "redirects to scheme 'ftp'"),
        ("/loop", "more than 5 redirects"),
    ],
)
def test_forbidden_redirects_are_refused(
    server: str, tmp_path: Path, path: str, words: str
) -> None:
    with pytest.raises(errors.UnsupportedUri, match=words) as caught:
        fetch(f"{server}{path}", tmp_path)
    assert not caught.value.temporary
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_loopback_is_refused_unless_allowed(server: str, tmp_path: Path) -> None:
    before = len(Handler.hits)
    with pytest.raises(errors.UnsupportedUri, match="loopback address"):
        fetch(f"{server}/model.onnx", tmp_path, policy=fetching.FetchPolicy())
    assert len(Handler.hits) == before, "the server was contacted"


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("169.254.169.254", True),
        ("fe80::1", True),
        ("fd00:ec2::254", True),
        ("100.100.100.200", True),
        ("::ffff:169.254.169.254", True),
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("127.0.0.1", True),
        ("::1", True),
        ("10.0.0.5", False),  # in-cluster model servers are allowed
        ("93.184.216.34", False),
        ("2606:4700::1", False),
    ],
)
def test_address_refusals(address: str, refused: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert (fetching.address_refusal(ip, allow_loopback=False) is not None) is refused
    if ip.is_loopback:
        assert fetching.address_refusal(ip, allow_loopback=True) is None


def test_file_uris_only_below_the_model_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "m.onnx").write_bytes(GOOD)
    (outside / "secret").write_bytes(GOOD)
    (root / "link.onnx").symlink_to(outside / "secret")
    policy = fetching.FetchPolicy(file_root=root)
    dest = tmp_path / "dest"
    assert fetch((root / "m.onnx").as_uri(), dest, policy=policy).read_bytes() == GOOD
    for uri in (
        (outside / "secret").as_uri(),
        (root / "link.onnx").as_uri(),
        f"file://{root}/../outside/secret",
    ):
        (dest / f"{GOOD_SHA}.onnx").unlink(missing_ok=True)
        with pytest.raises(errors.UnsupportedUri, match="below the model root"):
            fetch(uri, dest, policy=policy)
    with pytest.raises(errors.UnsupportedUri, match="file:// model URIs are off"):
        fetch((root / "m.onnx").as_uri(), tmp_path / "d2", policy=fetching.FetchPolicy())


def test_special_files_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    policy = fetching.FetchPolicy(file_root=tmp_path)
    with pytest.raises(errors.UnsupportedUri, match="not a regular file"):
        fetch(fifo.as_uri(), tmp_path / "dest", policy=policy)


def test_file_uri_reuse_reads_nothing(tmp_path: Path) -> None:
    source = tmp_path / "source.onnx"
    source.write_bytes(GOOD)
    dest = tmp_path / "models"
    policy = fetching.FetchPolicy(file_root=tmp_path)
    first = fetch(source.as_uri(), dest, policy=policy)
    source.unlink()  # a second fetch of the same digest reads nothing
    assert fetch(source.as_uri(), dest, policy=policy) == first


@pytest.mark.parametrize(
    ("uri", "error", "words"),
    [
        ("file:///nonexistent/model.onnx", errors.ModelNotFound, "does not exist"),
        ("s3://bucket/model.onnx", errors.UnsupportedUri, "use https://, http:// or file://"),
    ],
)
def test_bad_uris(uri: str, error: type[errors.EdgewaveError], words: str, tmp_path: Path) -> None:
    with pytest.raises(error, match=words):
        fetch(uri, tmp_path, policy=fetching.LOCAL_USER)


def test_digest_mismatch_never_echoes_what_arrived(server: str, tmp_path: Path) -> None:
    # The digest of what arrived would tell a rollout's author the digest of any file or
    # URL the operator can read (a token, an internal page): an oracle.
    with pytest.raises(errors.DigestMismatch) as caught:
        fetch(f"{server}/model.onnx", tmp_path, sha256=OTHER_SHA)
    message = str(caught.value)
    assert GOOD_SHA not in message and GOOD_SHA[:12] not in message
    assert OTHER_SHA in message and "sha256sum" in message
    assert not caught.value.temporary
    assert list(tmp_path.iterdir()) == []
