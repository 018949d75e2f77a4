"""What kubeyaml writes, kubectl (Go's YAML reader) and the API server read back unchanged."""

from __future__ import annotations

import json
import secrets

import pytest
import yaml

from edgewave_api import kubeyaml
from edgewave_operator.devcluster import clusters

pytestmark = pytest.mark.integration

# ConfigMap data must be strings: the API server refuses a value Go read as a number.
VALUES = ["0255e1", "1e3", "0o17", "0x1F", "1_000", "12:30", "y", "N", "on", "null", "1.0.0"]


def _config_map(name: str) -> dict[str, object]:
    data = {f"k{i}": value for i, value in enumerate(VALUES)}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def test_kubectl_reads_back_every_value_as_written(kube: clusters.DevCluster) -> None:
    name = f"kubeyaml-{secrets.token_hex(3)}"
    manifest = _config_map(name)
    kube.kubectl("apply", "-n", "default", "-f", "-", input=kubeyaml.dump(manifest))
    try:
        stored = json.loads(
            kube.kubectl("get", "configmap", name, "-n", "default", "-o", "json").stdout
        )
        assert stored["data"] == manifest["data"]
    finally:
        kube.kubectl("delete", "configmap", name, "-n", "default", "--wait=false")


def test_the_same_manifest_from_plain_pyyaml_is_refused(kube: clusters.DevCluster) -> None:
    # Shows the test above can fail: without the quoting Go turns "0255e1" into a number.
    result = kube.kubectl(
        "apply", "-n", "default", "--dry-run=server", "-f", "-",
        input=yaml.safe_dump(_config_map(f"bare-{secrets.token_hex(3)}")), check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "cannot unmarshal number" in result.stderr or "must be of type string" in result.stderr
