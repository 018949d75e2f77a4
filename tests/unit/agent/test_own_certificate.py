"""Which certificate an agent starts with: the configured pair or the renewed one it kept."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from edgewave_agent import errors, identity
from edgewave_api import identities, pki

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.new_ca("test-ca")


def _cert(ca: pki.KeyPair, name: str, *, days: int) -> pki.KeyPair:
    return pki.issue(
        ca,
        common_name=name,
        uris=(identities.agent(name),),
        server=True,
        client=True,
        validity=datetime.timedelta(days=days),
        now=NOW - datetime.timedelta(days=1),
    )


def _files(pair: pki.KeyPair) -> tuple[bytes, bytes]:
    return pair.key_pem, pair.cert_pem


def _load(
    tmp_path: Path, ca: pki.KeyPair, configured: pki.KeyPair, renewed: tuple[bytes, bytes] | None
) -> identity.AgentIdentity:
    (tmp_path / "cert.pem").write_bytes(configured.cert_pem)
    (tmp_path / "key.pem").write_bytes(configured.key_pem)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    kept = tmp_path / "data" / "identity"
    if renewed is not None:
        kept.mkdir(parents=True)
        (kept / identity.KEY_FILE).write_bytes(renewed[0])
        (kept / identity.CERT_FILE).write_bytes(renewed[1])
    return identity.AgentIdentity(
        agent_id="edge-a",
        trust_domain="edgewave",
        cert_file=tmp_path / "cert.pem",
        key_file=tmp_path / "key.pem",
        ca_file=tmp_path / "ca.pem",
        directory=kept,
        clock=lambda: NOW,
    )


def test_a_renewed_pair_that_outlives_the_configured_one_is_used(
    tmp_path: Path, ca: pki.KeyPair
) -> None:
    renewed = _cert(ca, "edge-a", days=90)
    own = _load(tmp_path, ca, _cert(ca, "edge-a", days=30), (renewed.key_pem, renewed.cert_pem))
    assert own.current().cert_pem == renewed.cert_pem
    assert own.current().source == "renewed"


def test_a_newer_configured_certificate_wins_over_the_renewed_one(
    tmp_path: Path, ca: pki.KeyPair
) -> None:
    renewed = _cert(ca, "edge-a", days=30)
    configured = _cert(ca, "edge-a", days=90)
    own = _load(tmp_path, ca, configured, (renewed.key_pem, renewed.cert_pem))
    assert own.current().cert_pem == configured.cert_pem


@pytest.mark.parametrize(
    "case", ["key of another pair", "another agent", "another CA", "not valid yet", "garbage"]
)
def test_a_renewed_pair_that_does_not_hold_is_ignored(
    tmp_path: Path, ca: pki.KeyPair, case: str
) -> None:
    configured = _cert(ca, "edge-a", days=30)
    good = _cert(ca, "edge-a", days=90)
    renewed = {
        "key of another pair": (configured.key_pem, good.cert_pem),
        "another agent": _files(_cert(ca, "edge-b", days=90)),
        "another CA": _files(_cert(pki.new_ca("other"), "edge-a", days=90)),
        "not valid yet": _files(
            pki.issue(
                ca,
                common_name="edge-a",
                uris=(identities.agent("edge-a"),),
                server=True,
                client=True,
                validity=datetime.timedelta(days=90),
                now=NOW + datetime.timedelta(days=10),
            )
        ),
        "garbage": (b"not a key", b"not a certificate"),
    }[case]
    own = _load(tmp_path, ca, configured, renewed)
    assert own.current().cert_pem == configured.cert_pem


def test_a_certificate_without_a_pending_renewal_is_refused(
    tmp_path: Path, ca: pki.KeyPair
) -> None:
    own = _load(tmp_path, ca, _cert(ca, "edge-a", days=30), None)
    with pytest.raises(identity.NoRenewalPending, match="no renewal is pending"):
        own.install(_cert(ca, "edge-a", days=90).cert_pem)
    assert not (tmp_path / "data" / "identity").exists()
    assert issubclass(identity.NoRenewalPending, errors.AgentError)


def test_an_rsa_certificate_cannot_ask_for_renewal(tmp_path: Path, ca: pki.KeyPair) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge-a")]))
        .issuer_name(x509.load_pem_x509_certificate(ca.cert_pem).subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .sign(ca_key, hashes.SHA256())
    )
    rsa_pair = pki.KeyPair(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    own = _load(tmp_path, ca, rsa_pair, None)
    with pytest.raises(identity.CannotRenew, match="must be an EC private key"):
        own.request_renewal()
    assert identity.CannotRenew.status == "FAILED_PRECONDITION"
