"""The configuration examples in docs/gateway.md are valid configurations."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from edgewave_agent import settings as agent_settings
from edgewave_gateway import settings as gateway_settings

DOC = Path(__file__).resolve().parents[3] / "docs" / "gateway.md"


def _yaml_blocks() -> dict[str, dict[str, object]]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    return {block.splitlines()[0]: yaml.safe_load(block) for block in blocks}


def test_gateway_example_is_a_valid_gateway_config() -> None:
    config = gateway_settings.parse(_yaml_blocks()["# gateway.yaml"])
    assert int(config.cache.capacity_bytes) == 50 << 30


def test_agent_example_is_a_valid_gateway_mode_agent_config() -> None:
    config = agent_settings.parse(_yaml_blocks()["# agent.yaml (excerpt)"])
    assert config.gateway is not None
    assert config.control_socket() == Path("/var/lib/edgewave/run/control.sock")
