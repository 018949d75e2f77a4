"""The admin kubeconfig is self-contained and points at the right server."""

from __future__ import annotations

import base64

import yaml

from edgewave_operator.devcluster import kubeconfigs


def test_kubeconfig_embeds_credentials_and_selects_its_context() -> None:
    rendered = kubeconfigs.render(
        server="https://127.0.0.1:1234",
        ca_pem=b"CA",
        client_cert_pem=b"CERT",
        client_key_pem=b"KEY",
        name="dev",
    )
    config = yaml.safe_load(rendered)
    assert config["current-context"] == "dev"
    (context,) = config["contexts"]
    (cluster,) = config["clusters"]
    (user,) = config["users"]
    assert context["context"] == {"cluster": "dev", "user": "dev", "namespace": "default"}
    assert cluster["cluster"]["server"] == "https://127.0.0.1:1234"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == b"CA"
    assert base64.b64decode(user["user"]["client-certificate-data"]) == b"CERT"
    assert base64.b64decode(user["user"]["client-key-data"]) == b"KEY"
