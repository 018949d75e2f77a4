"""The webhook certificate: names it is valid for, and which webhooks get its CA (pure)."""

from __future__ import annotations

import base64
from typing import Any

from cryptography import x509

from edgewave_operator.admission import certificates

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
BUNDLE = base64.b64encode(CA).decode()


def _hook(name: str, *, service: str = "ew-webhook", ns: str = "edge", **config: Any) -> Any:
    return {
        "name": name,
        "clientConfig": {"service": {"name": service, "namespace": ns, "path": "/x"}, **config},
    }


def test_every_webhook_calling_the_service_gets_the_bundle() -> None:
    hooks = [_hook("a"), _hook("b", service="other"), _hook("c", ns="elsewhere"), _hook("d")]
    patch = certificates.ca_bundle_patch(hooks, service="ew-webhook", namespace="edge", ca_pem=CA)
    assert patch == [
        {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": BUNDLE},
        {"op": "add", "path": "/webhooks/3/clientConfig/caBundle", "value": BUNDLE},
    ]


def test_a_webhook_with_the_bundle_already_needs_nothing_and_a_stale_one_is_replaced() -> None:
    hooks = [_hook("a", caBundle=BUNDLE), _hook("b", caBundle="c3RhbGU=")]
    patch = certificates.ca_bundle_patch(hooks, service="ew-webhook", namespace="edge", ca_pem=CA)
    assert [op["path"] for op in patch] == ["/webhooks/1/clientConfig/caBundle"]


def test_url_webhooks_are_left_alone() -> None:
    hooks = [{"name": "u", "clientConfig": {"url": "https://example.com/x"}}]
    assert certificates.ca_bundle_patch(hooks, service="s", namespace="n", ca_pem=CA) == []


def test_the_serving_certificate_names_the_service_and_chains_to_the_ca() -> None:
    material = certificates.new_material(service="ew-webhook", namespace="edge")
    leaf = x509.load_pem_x509_certificate(material["tls.crt"])
    ca = x509.load_pem_x509_certificate(material["ca.crt"])
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {
        "ew-webhook",
        "ew-webhook.edge",
        "ew-webhook.edge.svc",
        "ew-webhook.edge.svc.cluster.local",
    }
    leaf.verify_directly_issued_by(ca)
    assert b"PRIVATE KEY" in material["tls.key"]


def test_long_names_fit_the_common_name_limit() -> None:
    # A release namespace may be 63 characters; x509 common names hold at most 64.
    material = certificates.new_material(service="s" * 63, namespace="n" * 63)
    leaf = x509.load_pem_x509_certificate(material["tls.crt"])
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{'s' * 63}.{'n' * 63}.svc" in names.get_values_for_type(x509.DNSName)
