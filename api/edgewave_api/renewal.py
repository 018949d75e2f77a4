"""Agents renew their own certificates: a request any relay can carry, checked end to end.

An agent asks for a new certificate with a `RenewalRequest`: a CSR for a fresh key (proof
that it holds the new key), its current certificate, and a signature over the CSR made with
its current key (proof that it is the holder of the current certificate). The authority
that holds the CA (the operator) checks all three itself (`sign`), so whatever carries the
request, directly or through a gateway (issue #15), needs no trust: a relay cannot renew
for another agent or widen a certificate's names. The new certificate repeats the current
one's names (its `spiffe://<trust-domain>/agent/<name>` URI, DNS names and addresses) and
nothing from the CSR but the key; only an agent identity may renew this way. `due` says
when to ask: a third of the validity left, as for the operator's own certificate.
Pure: PEM in, PEM out, the clock passed in.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from edgewave_api import identities, pki
from edgewave_api.errors import PermanentError

PURPOSE = b"edgewave.renewal.v1\n"
RENEW_WHEN_LEFT = 1 / 3
MAX_VALIDITY = datetime.timedelta(days=398)
"""The longest a renewed certificate lives (the CA/Browser Forum's ceiling for TLS)."""


class RenewalRefused(PermanentError):
    """The renewal request does not prove who it is for (the message says why)."""


@dataclass(frozen=True)
class RenewalRequest:
    csr_pem: bytes
    current_cert_pem: bytes
    # ECDSA (SHA-256) by the current certificate's key over PURPOSE + the CSR's DER.
    proof: bytes


def due(cert_pem: bytes, *, now: datetime.datetime) -> bool:
    """Whether a certificate should be renewed now (RENEW_WHEN_LEFT of its life left)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return due_between(cert.not_valid_before_utc, cert.not_valid_after_utc, now=now)


def due_between(
    not_before: datetime.datetime, not_after: datetime.datetime, *, now: datetime.datetime
) -> bool:
    """`due` for a certificate known only by its validity (as an agent's Describe reports it)."""
    return now >= not_after - (not_after - not_before) * RENEW_WHEN_LEFT


def request(current: pki.KeyPair) -> tuple[bytes, RenewalRequest]:
    """Agent side: a new private key (PEM) and the request to certify it."""
    current_key = serialization.load_pem_private_key(current.key_pem, password=None)
    if not isinstance(current_key, ec.EllipticCurvePrivateKey):
        raise RenewalRefused("the current key must be an EC private key")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.load_pem_x509_certificate(current.cert_pem).subject
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    der = csr.public_bytes(serialization.Encoding.DER)
    proof = current_key.sign(PURPOSE + der, ec.ECDSA(hashes.SHA256()))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, RenewalRequest(
        csr_pem=csr.public_bytes(serialization.Encoding.PEM),
        current_cert_pem=current.cert_pem,
        proof=proof,
    )


def _current(
    ca_cert: x509.Certificate, cert_pem: bytes, *, now: datetime.datetime
) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        raise RenewalRefused("the current certificate is not issued by this CA") from None
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise RenewalRefused(
            f"the current certificate is not valid now (it expired {cert.not_valid_after_utc:%c}"
            " or is not valid yet): an expired agent certificate is replaced by hand"
        )
    return cert


def sign(
    ca: pki.KeyPair,
    renewal: RenewalRequest,
    *,
    trust_domain: str,
    now: datetime.datetime,
    validity: datetime.timedelta | None = None,
) -> tuple[identities.Identity, bytes]:
    """Authority side: the agent the request proves to be, and its new certificate (PEM).

    It lives `validity`, by default as long as the current one (at most MAX_VALIDITY): a
    fixed shorter life could end before the current certificate, which the agent refuses.

    Refused unless the current certificate is from `ca`, valid now and names an agent; the
    proof verifies with its key over this CSR; and the CSR's own signature verifies.
    """
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    current = _current(ca_cert, renewal.current_cert_pem, now=now)
    identity = identities.of_client_certificate(renewal.current_cert_pem, trust_domain=trust_domain)
    if identity.role is not identities.Role.AGENT:
        raise RenewalRefused(f"only agents renew this way, and this is {identity}")
    try:
        csr = x509.load_pem_x509_csr(renewal.csr_pem)
    except ValueError:
        raise RenewalRefused("the CSR does not parse") from None
    if not csr.is_signature_valid:
        raise RenewalRefused("the CSR's signature does not verify: it must be signed by its key")
    if not isinstance(csr.public_key(), ec.EllipticCurvePublicKey):
        raise RenewalRefused("the CSR's key must be an EC key")
    current_key = current.public_key()
    assert isinstance(current_key, ec.EllipticCurvePublicKey)
    try:
        current_key.verify(
            renewal.proof,
            PURPOSE + csr.public_bytes(serialization.Encoding.DER),
            ec.ECDSA(hashes.SHA256()),
        )
    except InvalidSignature:
        raise RenewalRefused(
            f"the proof does not verify with {identity}'s current key: only the holder of the"
            " current certificate may renew it"
        ) from None
    names = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    if validity is None:
        validity = min(current.not_valid_after_utc - current.not_valid_before_utc, MAX_VALIDITY)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    cert = (
        x509.CertificateBuilder()
        .subject_name(current.subject)
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return identity, cert.public_bytes(serialization.Encoding.PEM)
