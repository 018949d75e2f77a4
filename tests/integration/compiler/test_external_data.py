"""No model makes the compiler read a file: every external-data route is refused by name.

Each test runs from a directory holding a secret-looking file that the hostile models
(`edgewave_compiler.leaks`) name by a relative path. `test_the_attack_is_real` shows what
happens without intake: ONNX Runtime reads the file and an inference of zeros returns it.
Intake must refuse each route before any backend sees the model, naming where the tensor
sits, both in process and through the compiler's build workers.
"""

from __future__ import annotations

import asyncio
import hashlib
import stat
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from edgewave_compiler import building, cache, compiling, errors, keys, leaks, workdirs

SECRET = b"TOPSECRET-TOKEN!"
LOCATION = "token"


@pytest.fixture
def secret_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a 'token' file, as `/var/run/secrets/...` would."""
    home = tmp_path / "cwd"
    home.mkdir()
    (home / LOCATION).write_bytes(SECRET + b"-rest-of-the-token")
    monkeypatch.chdir(home)
    return home


def write(tmp_path: Path, route: str) -> tuple[Path, keys.BuildKey]:
    data = leaks.ROUTES[route](LOCATION).SerializeToString()
    path = tmp_path / f"{route}.onnx"
    path.write_bytes(data)
    key = keys.BuildKey(
        model_sha256=hashlib.sha256(data).hexdigest(),
        backend=keys.Backend.ONNXRUNTIME,
        backend_version=onnxruntime.__version__,
    )
    return path, key


def test_the_attack_is_real(secret_cwd: Path) -> None:
    # Unchecked, the `constant` model's engine carries the file: zeros in, the secret out.
    model = leaks.constant(LOCATION).SerializeToString()
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": np.zeros(leaks.SIZE, np.uint8)})
    assert bytes(out) == SECRET


@pytest.mark.parametrize("route", sorted(leaks.ROUTES))
def test_each_route_is_refused_before_the_build(
    route: str, secret_cwd: Path, tmp_path: Path
) -> None:
    path, key = write(tmp_path, route)
    out = tmp_path / "out"
    with pytest.raises(errors.InvalidModel) as caught:
        building.build_engine(key=key, model_path=path, out_dir=out)
    message = str(caught.value)
    assert leaks.WHERE[route] in message and repr(LOCATION) in message
    assert "\n" not in message
    assert not out.exists(), "the backend ran"


def recording_python(tmp_path: Path) -> Path:
    """A stand-in interpreter that records its working directory, then runs the worker."""
    script = tmp_path / "recording-python"
    script.write_text(
        "#!/bin/sh\n"
        f'pwd > "{tmp_path}/cwd.txt"\n'
        f'stat -c %a . > "{tmp_path}/mode.txt"\n'
        f'ls -A > "{tmp_path}/listing.txt"\n'
        f'exec "{sys.executable}" "$@"\n'
    )
    script.chmod(0o755)
    return script


def test_workers_refuse_and_run_in_an_empty_private_directory(
    secret_cwd: Path, tmp_path: Path
) -> None:
    path, key = write(tmp_path, "if-constant")
    compiler = compiling.Compiler(
        cache.EngineCache(tmp_path / "cache"), python=str(recording_python(tmp_path))
    )

    async def scenario() -> None:
        try:
            with pytest.raises(errors.InvalidModel, match="attribute 'then_branch'"):
                await compiler.ensure_engine(key, path)
        finally:
            await compiler.close()

    asyncio.run(scenario())
    cwd = Path((tmp_path / "cwd.txt").read_text().strip())
    assert cwd != secret_cwd
    assert (tmp_path / "mode.txt").read_text().strip() == "700"
    assert (tmp_path / "listing.txt").read_text() == ""
    assert not cwd.exists(), "the private directory outlived the worker"
    assert compiler.cache.read(key.digest()) is None


def test_a_worker_moves_into_a_private_directory_itself(tmp_path: Path) -> None:
    before = Path.cwd()
    with workdirs.inside_private_dir() as inside:
        assert Path.cwd() == inside
        assert stat.S_IMODE(inside.stat().st_mode) == 0o700
        assert list(inside.iterdir()) == []
    assert Path.cwd() == before and not inside.exists()
