"""Model intake: digest before parsing, classified fetch errors, checked models, profiles."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import onnx
import pytest

from edgewave_compiler import errors, intake, keys, samples

Saver = Callable[[onnx.ModelProto | bytes, str], tuple[Path, str]]
GOOD = samples.matmul_relu().SerializeToString()
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/model.onnx":
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            self.wfile.write(GOOD)
        elif self.path == "/short.onnx":
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            self.wfile.write(GOOD[:50])
        elif self.path == "/broken":
            self.send_error(503, "maintenance")
        else:
            self.send_error(404, "no such model")

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


def test_fetch_over_http_is_content_addressed(server: str, tmp_path: Path) -> None:
    path = intake.fetch(f"{server}/model.onnx", sha256=GOOD_SHA, dest_dir=tmp_path)
    assert path == tmp_path / f"{GOOD_SHA}.onnx"
    assert path.read_bytes() == GOOD
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_fetch_file_uri_and_reuse(save: Saver, tmp_path: Path) -> None:
    source, sha = save(GOOD, "source.onnx")
    dest = tmp_path / "models"
    first = intake.fetch(source.as_uri(), sha256=sha, dest_dir=dest)
    source.unlink()  # a second fetch of the same digest reads nothing
    assert intake.fetch(source.as_uri(), sha256=sha, dest_dir=dest) == first


def test_wrong_digest_is_permanent_and_leaves_nothing(server: str, tmp_path: Path) -> None:
    wrong = "0" * 64
    with pytest.raises(errors.DigestMismatch) as caught:
        intake.fetch(f"{server}/model.onnx", sha256=wrong, dest_dir=tmp_path)
    assert not caught.value.temporary
    message = str(caught.value)
    assert f"has sha256 {GOOD_SHA} but spec.model.sha256 is {wrong}" in message
    assert "sha256sum" in message
    assert list(tmp_path.iterdir()) == []


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
        intake.fetch(f"{server}{path}", sha256=GOOD_SHA, dest_dir=tmp_path)
    assert caught.value.temporary is temporary
    assert words in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_is_temporary(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(errors.ModelFetchError, match="cannot reach") as caught:
        intake.fetch(f"http://127.0.0.1:{port}/m.onnx", sha256=GOOD_SHA, dest_dir=tmp_path)
    assert caught.value.temporary


@pytest.mark.parametrize(
    ("uri", "error", "words"),
    [
        ("file:///nonexistent/model.onnx", errors.ModelNotFound, "does not exist"),
        ("s3://bucket/model.onnx", errors.UnsupportedUri, "use file://, http:// or https://"),
    ],
)
def test_bad_uris(uri: str, error: type[errors.EdgewaveError], words: str, tmp_path: Path) -> None:
    with pytest.raises(error, match=words):
        intake.fetch(uri, sha256=GOOD_SHA, dest_dir=tmp_path)


def test_inspect_lists_inputs_outputs_and_dynamic_dims(save: Saver) -> None:
    path, sha = save(samples.matmul_relu(), "m.onnx")
    info = intake.inspect(path)
    assert info.sha256 == sha
    assert info.opset == samples.OPSET
    assert [(t.name, t.dtype, t.shape) for t in info.inputs] == [("x", "FLOAT", ("N", 8))]
    assert [(t.name, t.dtype, t.shape) for t in info.outputs] == [("y", "FLOAT", ("N", 4))]
    assert info.inputs[0].dynamic_dims == (0,)
    assert ("", "MatMul") in info.op_types
    assert not info.is_quantized
    assert intake.inspect(save(samples.quantized_matmul(), "q.onnx")[0]).is_quantized


def _bad_opset() -> onnx.ModelProto:
    model = samples.matmul_relu()
    model.opset_import[0].version = 99
    return model


def _dangling_input() -> onnx.ModelProto:
    model = samples.matmul_relu()
    model.graph.node[1].input[0] = "nowhere"
    return model


@pytest.mark.parametrize(
    ("content", "error", "words"),
    [
        (GOOD[: len(GOOD) // 2], errors.InvalidModel, "truncated or another format"),
        (b"<!doctype html><html>login</html>", errors.InvalidModel, "looks like HTML"),
        (b"PK\x03\x04" + bytes(60), errors.InvalidModel, "zip archive"),
        (bytes(range(256)) * 4, errors.InvalidModel, "Re-export or re-upload"),
        (
            _bad_opset().SerializeToString(),
            errors.UnsupportedOpset,
            "re-export the model with opset",
        ),
        (_dangling_input().SerializeToString(), errors.InvalidModel, "fails the ONNX checker"),
    ],
    ids=["truncated", "html", "zip", "binary-junk", "opset-99", "checker"],
)
def test_bad_model_bytes_are_typed_errors(
    save: Saver, content: bytes, error: type[errors.EdgewaveError], words: str
) -> None:
    path, _ = save(content, "bad.onnx")
    with pytest.raises(error, match=words) as caught:
        intake.inspect(path)
    assert not caught.value.temporary


def _info(batch: int | str = "N") -> intake.ModelInfo:
    return intake.inspect_model(samples.matmul_relu(batch=batch), path=Path("m.onnx"), sha256="0")


def test_dynamic_input_without_profile_names_input_and_dim() -> None:
    with pytest.raises(errors.MissingShapeProfile) as caught:
        intake.check_profiles(_info(), [])
    message = str(caught.value)
    assert "input 'x'" in message
    assert "dynamic dimension 0 ('N')" in message
    assert "--profile x:1x8:4x8:16x8" in message
    assert "spec.build.profiles" in message


@pytest.mark.parametrize(
    ("profile", "words"),
    [
        (keys.ShapeProfile(input="images", min=(1, 8), opt=(1, 8), max=(1, 8)), "inputs: x"),
        (keys.ShapeProfile(input="x", min=(1,), opt=(1,), max=(1,)), "rank 1"),
        (keys.ShapeProfile(input="x", min=(1, 4), opt=(1, 8), max=(1, 8)), "fixes it at 8"),
    ],
)
def test_profiles_must_fit_the_model(profile: keys.ShapeProfile, words: str) -> None:
    with pytest.raises(errors.InvalidShapeProfile, match=words):
        intake.check_profiles(_info(), [profile])


def test_static_model_needs_no_profile_and_good_profile_passes() -> None:
    static, dynamic = _info(batch=2), _info()
    # What makes the two calls below meaningful: one input fixed, one with a dynamic batch.
    assert [(t.name, t.shape, t.dynamic_dims) for t in static.inputs] == [("x", (2, 8), ())]
    assert [(t.name, t.dynamic_dims) for t in dynamic.inputs] == [("x", (0,))]
    good = keys.ShapeProfile(input="x", min=(1, 8), opt=(4, 8), max=(16, 8))
    intake.check_profiles(static, [])  # raises if refused
    intake.check_profiles(dynamic, [good])
    # The same dynamic model without the profile is refused: the pass above is the profile's.
    with pytest.raises(errors.MissingShapeProfile, match="input 'x'"):
        intake.check_profiles(dynamic, [])
