"""Gateway and gateway-mode agent configurations: bad ones fail with one line per field."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgewave_agent import settings as agent_settings
from edgewave_gateway import settings

BASE = {
    "name": "gw",
    "tls": {"cert_file": "c", "key_file": "k", "client_ca_file": "ca"},
    "cache": {"directory": "/tmp/x"},
}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"name": ""}, "name:"),
        ({"tls": {"cert_file": "c"}}, "tls.key_file: Field required"),
        ({"cache": {"directory": "/x", "capacity_bytes": 10}}, "cache.capacity_bytes"),
        ({"heartbeat_seconds": 0}, "heartbeat_seconds"),
        ({"surprise": 1}, "surprise: Extra inputs"),
    ],
)
def test_bad_gateway_configs_name_the_field(change: dict[str, object], match: str) -> None:
    with pytest.raises(settings.ConfigError, match=match):
        settings.parse({**BASE, **change})


def test_agent_gateway_mode_needs_tls_and_an_address(tmp_path: Path) -> None:
    base = {
        "agent_id": "edge-1",
        "data_dir": str(tmp_path),
        "activation_public_key_pem": "x",
        "insecure": True,
    }
    with pytest.raises(agent_settings.ConfigError, match="gateway needs mTLS"):
        agent_settings.parse({**base, "gateway": {"address": "gw:7444"}})
    with pytest.raises(agent_settings.ConfigError, match=r"gateway\.address"):
        agent_settings.parse({**base, "insecure": False, "gateway": {"address": "no port"}})


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name: [unclosed", "is not valid YAML"),
        ("- a list", "must be a mapping at the top level"),
    ],
)
def test_a_bad_gateway_config_file_is_one_line_naming_it(
    tmp_path: Path, text: str, match: str
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    with pytest.raises(settings.ConfigError, match=match) as refused:
        settings.load(path)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)


def test_a_missing_gateway_config_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(settings.ConfigError, match=r"cannot read config .*absent\.yaml"):
        settings.load(path)
