"""This agent's own certificate: the configured pair, or one renewed over its connection.

Edge agents sit behind NAT and are enrolled by the thousand, so nobody renews their
certificates by hand. The operator, which holds the CA, asks an agent for a renewal
request when its certificate has a third of its life left (`edgewave_api.renewal`): the
agent makes a fresh key, keeps it in memory, and answers with a CSR and a proof signed by
its current key. The operator checks and signs it and sends the certificate back;
`install` takes it only if it certifies the pending key, is issued by a CA this agent
trusts, names the agent its current certificate names, serves and dials, is valid now
and outlives the current one.

The renewed pair is written under `<data_dir>/identity/` (0600), never over the
configured files (they may be read-only or managed by someone else); at start it is used
while it is valid and outlives the configured one, so a newer certificate put in the
configured files wins again. Readers take `current()` at each use: the ports reload it at
their next TLS handshake, the gateway dialer at its next dial.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from edgewave_agent import errors, files
from edgewave_api import identities, pki, renewal

log = logging.getLogger(__name__)
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"


class NoRenewalPending(errors.AgentError):
    """A certificate arrived but no renewal request is waiting for one (e.g. after a restart)."""

    status = "FAILED_PRECONDITION"


class CannotRenew(errors.AgentError):
    """This agent's current pair cannot make a renewal request (e.g. an RSA key)."""

    status = "FAILED_PRECONDITION"


@dataclass(frozen=True)
class Pair:
    key_pem: bytes
    cert_pem: bytes
    not_before: datetime.datetime
    not_after: datetime.datetime
    # Where it was read from: "configured" or "renewed".
    source: str


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class AgentIdentity:
    """The agent's current key pair, and its renewal (thread-safe: TLS reads it per handshake)."""

    def __init__(
        self,
        *,
        agent_id: str,
        trust_domain: str,
        cert_file: Path,
        key_file: Path,
        ca_file: Path,
        directory: Path,
        clock: Callable[[], datetime.datetime] = _utcnow,
    ) -> None:
        self._agent_id = agent_id
        self._trust_domain = trust_domain
        self._ca_file = ca_file
        self._directory = directory
        self._clock = clock
        self._lock = threading.Lock()
        self._pending_key: bytes | None = None
        # Bumped on every install, so credential readers can tell the pair changed.
        self.generation = 0
        configured = _pair(key_file.read_bytes(), cert_file.read_bytes(), source="configured")
        self._current = self._prefer_renewed(configured)

    def current(self) -> Pair:
        with self._lock:
            return self._current

    def _prefer_renewed(self, configured: Pair) -> Pair:
        cert_path, key_path = self._directory / CERT_FILE, self._directory / KEY_FILE
        if not cert_path.exists() or not key_path.exists():
            return configured
        try:
            renewed = _pair(key_path.read_bytes(), cert_path.read_bytes(), source="renewed")
            self._check(renewed.cert_pem, like=configured, now=self._clock())
        except (ValueError, errors.AgentError) as error:
            log.warning("ignoring the renewed certificate in %s: %s", self._directory, error)
            return configured
        return renewed if renewed.not_after > configured.not_after else configured

    def request_renewal(self) -> renewal.RenewalRequest:
        """A fresh key, kept until its certificate arrives, and the request to certify it."""
        current = self.current()
        try:
            key_pem, request = renewal.request(
                pki.KeyPair(cert_pem=current.cert_pem, key_pem=current.key_pem)
            )
        except renewal.RenewalRefused as error:
            raise CannotRenew(f"this agent's certificate cannot renew itself: {error}") from None
        with self._lock:
            self._pending_key = key_pem
        return request

    def install(self, cert_pem: bytes) -> Pair:
        """Take the certificate for the pending key (checked as the module says); durable."""
        with self._lock:
            pending = self._pending_key
            current = self._current
        if pending is None:
            raise NoRenewalPending(
                "no renewal is pending on this agent (it may have restarted): request one first"
            )
        now = self._clock()
        cert = self._check(cert_pem, like=current, now=now)
        if _public_der(cert.public_key()) != _public_der(
            serialization.load_pem_private_key(pending, password=None).public_key()
        ):
            raise errors.InvalidRequest(
                "certificate: it is not for the key of this agent's pending renewal"
            )
        if cert.not_valid_after_utc <= current.not_after:
            raise errors.InvalidRequest(
                f"certificate: it expires {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}, not after"
                f" the current one ({current.not_after:%Y-%m-%dT%H:%M:%SZ})"
            )
        renewed = _pair(pending, cert_pem, source="renewed")
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Key first: a crash between the two writes leaves a mismatch, which start ignores.
        files.atomic_write(self._directory / KEY_FILE, pending, mode=0o600)
        files.atomic_write(self._directory / CERT_FILE, cert_pem, mode=0o600)
        with self._lock:
            self._current = renewed
            self._pending_key = None
            self.generation += 1
        log.info(
            "agent %s installed a renewed certificate, valid until %s",
            self._agent_id,
            renewed.not_after.isoformat(),
        )
        return renewed

    def _check(self, cert_pem: bytes, *, like: Pair, now: datetime.datetime) -> x509.Certificate:
        """The certificate if a trusted CA issued it for the identity `like` has (this
        agent's), to serve and dial, valid now."""
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError:
            raise errors.InvalidRequest("certificate: it is not a PEM certificate") from None
        if not any(_issued_by(cert, ca) for ca in _bundle(self._ca_file.read_bytes())):
            raise errors.PermissionDenied(
                "certificate: it is not issued by a CA this agent trusts (tls.client_ca_file)"
            )
        try:
            identity = identities.of_client_certificate(cert_pem, trust_domain=self._trust_domain)
        except identities.IdentityRefused as error:
            raise errors.PermissionDenied(f"certificate: {error}") from None
        wanted = self._identity_of(like)
        if identity != wanted:
            raise errors.PermissionDenied(
                f"certificate: it is for {identity}, not this agent ({wanted})"
            )
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.SERVER_AUTH not in usages:
            raise errors.InvalidRequest("certificate: it is not issued for serverAuth")
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise errors.InvalidRequest("certificate: it is not valid now")
        return cert

    def _identity_of(self, pair: Pair) -> identities.Identity:
        try:
            return identities.of_client_certificate(pair.cert_pem, trust_domain=self._trust_domain)
        except identities.IdentityRefused as error:
            raise errors.PermissionDenied(
                f"this agent's {pair.source} certificate names no agent identity ({error}):"
                " it cannot be renewed, replace it by hand"
            ) from None


def _pair(key_pem: bytes, cert_pem: bytes, *, source: str) -> Pair:
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    if _public_der(cert.public_key()) != _public_der(key.public_key()):
        raise ValueError(f"the {source} certificate is not for its key")
    return Pair(
        key_pem=key_pem,
        cert_pem=cert_pem,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        source=source,
    )


def _public_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _bundle(pem: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        return []


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
