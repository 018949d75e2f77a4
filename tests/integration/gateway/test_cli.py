"""`edgewave gateway run`: a bad configuration is one line per problem and exit code 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from edgewave_operator.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_missing_settings_are_named(tmp_path: Path) -> None:
    result = _run("gateway", "run", "--name", "gw", "--cache-dir", str(tmp_path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "error: flags: tls.cert_file: Field required" in result.stderr


def test_bad_yaml_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("name: [unclosed")
    result = _run("gateway", "run", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: config {config} is not valid YAML")


def test_the_command_is_registered() -> None:
    result = _run("gateway", "run", "--help")
    assert result.returncode == 0
    assert "--cache-capacity" in result.stdout
