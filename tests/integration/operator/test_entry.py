"""`edgewave operator run` with unusable credentials: one clear line, exit 1, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

UNREACHABLE = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


@pytest.mark.parametrize(
    ("content", "says"),
    [
        pytest.param(None, "does not exist", id="missing"),
        pytest.param("clusters: [", "is not usable", id="not-yaml"),
        pytest.param("apiVersion: v1\nkind: Config\n", "is not usable", id="no-context"),
        pytest.param(UNREACHABLE, "cannot reach the API server", id="unreachable"),
    ],
)
def test_bad_kubeconfig_is_one_line_and_exit_1(
    tmp_path: Path, content: str | None, says: str
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    if content is not None:
        kubeconfig.write_text(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEWAVE_", "KUBE"))}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "edgewave"), "operator", "run",
         "--kubeconfig", str(kubeconfig)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and says in lines[0], lines[0]
    assert "Traceback" not in result.stdout + result.stderr
