"""Where the operator dials its embedded gateway, and which addresses its certificate names."""

from __future__ import annotations

import pytest
from cryptography import x509

from edgewave_api import pki
from edgewave_operator.agents import embedding
from edgewave_operator.settings import OperatorSettings


class _Bound:
    port = 7444


@pytest.mark.parametrize(
    ("listen", "dialled"),
    [
        ("0.0.0.0:7444", "127.0.0.1:7444"),
        ("[::]:7444", "127.0.0.1:7444"),
        (":7444", "127.0.0.1:7444"),
        ("10.213.0.1:0", "10.213.0.1:7444"),
        ("[fd00::1]:7444", "[fd00::1]:7444"),
        ("gateway.local:7444", "gateway.local:7444"),
    ],
)
def test_the_operator_dials_the_address_its_gateway_is_bound_to(listen: str, dialled: str) -> None:
    assert embedding.address(_Bound(), listen=listen) == dialled  # type: ignore[arg-type]


def test_a_gateway_bound_to_one_ip_names_it_in_its_certificate(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = pki.new_ca("embedding-test-ca")
    monkeypatch.setenv("EDGEWAVE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("EDGEWAVE_GATEWAY_LISTEN", "10.213.0.1:0")
    settings = OperatorSettings()
    config = embedding.config(settings, ca=ca, ca_pem=ca.cert_pem)
    assert config.tls.cert_file is not None
    cert = x509.load_pem_x509_certificate(config.tls.cert_file.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert ips == {"127.0.0.1", "10.213.0.1"}
