"""The `edgewave-agent` command line: status of a running agent, and bad configs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from edgewave_agent import testing

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-c", "from edgewave_agent.cli import main; main()"]


def test_status_prints_the_agent(
    start_agent: Callable[..., testing.AgentProcess], agent_pki: testing.Pki, tmp_path: Path
) -> None:
    agent = start_agent("edge-status", zone="eu-central-1b")
    cert, key = tmp_path / "operator.pem", tmp_path / "operator-key.pem"
    cert.write_bytes(agent_pki.operator.cert_pem)
    key.write_bytes(agent_pki.operator.key_pem)
    ca = str(agent_pki.directory / "ca.pem")

    def status(*args: str) -> str:
        result = subprocess.run(
            [*CLI, "status", *args, "--ca", ca],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    full = status("--endpoint", agent.control, "--cert", str(cert), "--key", str(key))
    assert "edge-status" in full and "zone=eu-central-1b" in full
    assert "GPUs: none" in full
    # The serving port, without a certificate, names the agent and nothing more.
    anonymous = status("--endpoint", agent.serving)
    assert "edge-status" in anonymous and "zone=eu-central-1b" not in anonymous


def test_bad_config_is_one_line_per_problem(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("agent_id: edge\nstore: {keep_versions: 1}\n")
    result = subprocess.run(
        [*CLI, "serve", "--config", str(config), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ")
    wanted = "store.keep_versions: Input should be greater than or equal to 2"
    assert any(wanted in line for line in lines)
    assert "Traceback" not in result.stderr


def test_unreachable_agent_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "status", "--endpoint", "127.0.0.1:1", "--insecure", "--timeout", "2"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: agent at 127.0.0.1:1 did not answer: UNAVAILABLE")
