"""Who a peer is, read from its (already verified) certificate: an agent or the operator.

TLS checks that a certificate chains to the operator's CA; this module answers the next
question, which role that certificate was issued for. An agent's certificate carries the
Organization `edgewave-agents` and the agent's name as Common Name; the operator's carries
`edgewave-operators`. Both must allow client authentication (they dial the gateway).
Pure: PEM bytes in, an `Identity` or a one-line refusal out.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgewave_api import pki

AGENT_ORGANIZATION = "edgewave-agents"
OPERATOR_ORGANIZATION = "edgewave-operators"
GATEWAY_ORGANIZATION = "edgewave-gateways"
Role = Literal["agent", "operator"]
_ROLES: dict[str, Role] = {AGENT_ORGANIZATION: "agent", OPERATOR_ORGANIZATION: "operator"}
# Agent names become metadata values and file names: keep them to DNS-label characters.
_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")
MAX_NAME_LENGTH = 253


class IdentityError(ValueError):
    """The certificate is not one this peer may present; the message says why."""


@dataclass(frozen=True)
class Identity:
    role: Role
    name: str
    cert_pem: bytes


def check_name(name: str) -> str:
    """`name` if it is a valid agent name (lowercase DNS characters), else IdentityError."""
    if not name or len(name) > MAX_NAME_LENGTH or not set(name) <= _NAME_CHARACTERS:
        raise IdentityError(
            f"agent name {name[:64]!r} must be 1-{MAX_NAME_LENGTH} characters of a-z, 0-9, '-', '.'"
        )
    return name


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(oid)]


def identify(cert_pem: bytes) -> Identity:
    """The role and name of a verified client certificate, or IdentityError saying why not."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise IdentityError("the client certificate is not valid PEM") from None
    organizations = _attribute(cert.subject, NameOID.ORGANIZATION_NAME)
    roles = {_ROLES[o] for o in organizations if o in _ROLES}
    if len(roles) != 1:
        raise IdentityError(
            f"the client certificate's Organization {organizations} names no single role:"
            f" issue it with {AGENT_ORGANIZATION!r} (agents) or {OPERATOR_ORGANIZATION!r}"
        )
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise IdentityError("the client certificate does not allow client authentication")
    common_names = _attribute(cert.subject, NameOID.COMMON_NAME)
    if len(common_names) != 1:
        raise IdentityError("the client certificate must have exactly one Common Name")
    (role,) = roles
    name = common_names[0]
    if role == "agent":
        check_name(name)
    return Identity(role=role, name=name, cert_pem=cert_pem)


def issue_agent(
    ca: pki.KeyPair,
    *,
    name: str,
    dns_names: tuple[str, ...] = ("localhost",),
    ip_addresses: tuple[str, ...] = ("127.0.0.1",),
    validity: datetime.timedelta = pki.DEFAULT_VALIDITY,
) -> pki.KeyPair:
    """An agent's certificate: it serves (control/serving ports) and dials gateways."""
    return pki.issue(
        ca,
        common_name=check_name(name),
        organization=AGENT_ORGANIZATION,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        server=True,
        client=True,
        validity=validity,
    )


def issue_operator(
    ca: pki.KeyPair, *, name: str = "edgewave-operator", validity: datetime.timedelta
) -> pki.KeyPair:
    """The operator's client certificate (agents' control ports and gateways)."""
    return pki.issue(
        ca, common_name=name, organization=OPERATOR_ORGANIZATION, client=True, validity=validity
    )


def issue_gateway(
    ca: pki.KeyPair,
    *,
    name: str,
    dns_names: tuple[str, ...] = ("localhost",),
    ip_addresses: tuple[str, ...] = ("127.0.0.1",),
    validity: datetime.timedelta = pki.DEFAULT_VALIDITY,
) -> pki.KeyPair:
    """A gateway's serving certificate."""
    return pki.issue(
        ca,
        common_name=name,
        organization=GATEWAY_ORGANIZATION,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        server=True,
        validity=validity,
    )
