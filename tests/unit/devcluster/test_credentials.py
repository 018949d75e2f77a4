"""The generated PKI is what kube-apiserver and kubectl need."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgewave_operator.devcluster import commandlines, credentials

CREDENTIALS = credentials.generate()


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def test_serving_certificate_covers_loopback_and_is_signed_by_the_ca() -> None:
    ca = _cert(CREDENTIALS.ca.cert_pem)
    serving = _cert(CREDENTIALS.serving.cert_pem)
    serving.verify_directly_issued_by(ca)
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    usage = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage


def test_admin_is_a_client_in_system_masters() -> None:
    admin = _cert(CREDENTIALS.admin.cert_pem)
    admin.verify_directly_issued_by(_cert(CREDENTIALS.ca.cert_pem))
    organizations = admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert [o.value for o in organizations] == ["system:masters"]
    usage = admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usage


def test_written_private_keys_are_owner_only(tmp_path: Path) -> None:
    files = commandlines.Files(tmp_path)
    credentials.write(CREDENTIALS, files)
    for key in (files.serving_key, files.admin_key, files.service_account_key):
        assert key.stat().st_mode & 0o077 == 0, key
    assert files.service_account_pub.read_bytes() == CREDENTIALS.service_account_pub_pem
    assert b"PUBLIC KEY" in CREDENTIALS.service_account_pub_pem
