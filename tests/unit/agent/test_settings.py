"""The agent's config: YAML plus flag overrides, validated, errors one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgewave_agent import settings

VALID = """
agent_id: edge-1
region: eu-central
data_dir: /var/lib/edgewave
tls: {cert_file: s.pem, key_file: s.key, client_ca_file: ca.pem}
activation_public_key_file: op.pub
store: {quota_bytes: 2GiB, checkpoint_bytes: 8MiB}
fault_injection: {fail_probe_for_versions: ["m:2"]}
"""


def test_a_valid_file_with_flag_overrides(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(VALID)
    config = settings.load(path, {"region": "us-east", "listen": {"control": "127.0.0.1:0"}})
    assert config.region == "us-east"
    assert config.listen.control == "127.0.0.1:0"
    assert config.listen.serving == "0.0.0.0:8001"  # untouched default
    assert int(config.store.quota_bytes) == 2 << 30
    assert int(config.store.checkpoint_bytes) == 8 << 20
    assert settings.FaultInjection.matches(
        config.fault_injection.fail_probe_for_versions, model="m", version="2"
    )
    assert not settings.FaultInjection.matches(
        config.fault_injection.fail_probe_for_versions, model="n", version="2"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tls": {}}, "tls.cert_file, tls.key_file, tls.client_ca_file required"),
        ({"agent_id": ""}, "agent_id: String should have at least 1 character"),
        ({"store": {"keep_versions": 1}}, "store.keep_versions: Input should be greater than"),
        ({"store": {"quota_bytes": "lots"}}, "store.quota_bytes:"),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
        ({"activation_public_key_pem": "x"}, "exactly one of activation_public_key_file"),
        ({"inference": {"threads": 0}}, "inference.threads: Input should be greater than"),
        ({"inference": {"max_elements": 0}}, "inference.max_elements: Input should be greater"),
        ({"inference": {"max_request_bytes": "1KiB"}}, "inference.max_request_bytes: Input"),
    ],
)
def test_errors_are_one_line_each_and_name_the_field(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(VALID)
    overrides = {k: v for k, v in change.items() if k != "tls"}
    if "tls" in change:
        path.write_text(
            VALID.replace("tls: {cert_file: s.pem, key_file: s.key, client_ca_file: ca.pem}\n", "")
        )
    with pytest.raises(settings.ConfigError) as caught:
        settings.load(path, overrides)
    text = str(caught.value)
    assert message in text
    assert all(line.startswith(f"{path}: ") for line in text.splitlines())


def test_insecure_needs_no_certificates(tmp_path: Path) -> None:
    config = settings.parse(
        {
            "agent_id": "lab",
            "data_dir": str(tmp_path),
            "insecure": True,
            "activation_public_key_pem": "-----BEGIN PUBLIC KEY-----",
        }
    )
    assert config.insecure and config.tls.cert_file is None


@pytest.mark.parametrize(
    ("content", "message"),
    [("agent_id: [unclosed", "not valid YAML"), ("- a list", "must be a mapping")],
)
def test_unreadable_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(content)
    with pytest.raises(settings.ConfigError, match=message):
        settings.load(path)
    with pytest.raises(settings.ConfigError, match="cannot read config"):
        settings.load(tmp_path / "missing.yaml")


def test_the_stated_inference_memory_cap() -> None:
    """README "Inference limits" states 1.4 GiB for the defaults: 6 waiting requests of
    64 MiB and 2 being answered, each holding 4 x (64 MiB in + 64 MiB out)."""
    limits = settings.InferenceConfig()
    assert limits.memory_cap_bytes() == 6 * (64 << 20) + 2 * 4 * (128 << 20)
    assert settings.InferenceConfig(threads=8).memory_cap_bytes() == 8 * 4 * (128 << 20)


def test_the_documented_example_is_valid() -> None:
    example = Path(__file__).resolve().parents[3] / "edge-agent" / "agent.example.yaml"
    config = settings.load(example)
    assert config.agent_id == "edge-berlin-01"
    assert int(config.store.max_artifact_bytes or 0) == 8 << 30
    assert config.listen.control == "0.0.0.0:7443"
    assert config.inference == settings.InferenceConfig()  # the example shows the defaults
