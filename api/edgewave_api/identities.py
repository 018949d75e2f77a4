"""Who a certificate speaks for: roles carried as SPIFFE URI SANs.

Every Edgewave certificate names one role in one trust domain with a URI SAN:
`spiffe://<trust-domain>/operator`, `spiffe://<trust-domain>/gateway/<name>` or
`spiffe://<trust-domain>/agent/<name>`. Being signed by the CA says only "one of ours";
the role says what the holder may do, so an agent's certificate (which the agent also
needs to present) can never be used to command another agent. Issuers (`pki.issue` callers)
build the URIs here (or issue whole certificates with `issue_agent`, `issue_operator`,
`issue_gateway`) and verifiers read them here, so the operator, the agents and the gateway
share one vocabulary. Pure: PEM in, PEM or an `Identity` out; touches no file and no network.
"""

from __future__ import annotations

import datetime
import enum
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from edgewave_api import pki
from edgewave_api.errors import PermanentError

DEFAULT_TRUST_DOMAIN = "edgewave"
_TRUST_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,253}[a-z0-9])?$")
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$")


class Role(enum.StrEnum):
    OPERATOR = "operator"
    GATEWAY = "gateway"
    AGENT = "agent"


class IdentityRefused(PermanentError):
    """A certificate names no usable Edgewave identity (the message says why)."""


@dataclass(frozen=True)
class Identity:
    role: Role
    # The gateway's or agent's name; empty for the operator (there is one).
    name: str = ""

    def __str__(self) -> str:
        return f"{self.role}/{self.name}" if self.name else str(self.role)


def check_name(name: str) -> str:
    """`name` if it is a valid gateway or agent name (it becomes a URI path segment,
    metadata and file names), else IdentityRefused."""
    if not _NAME.match(name):
        raise IdentityRefused(
            f"name {name[:64]!r} must be 1-253 characters of A-Z, a-z, 0-9, '.', '_', '-',"
            " starting and ending with a letter or digit"
        )
    return name


def validate_trust_domain(trust_domain: str) -> str:
    if not _TRUST_DOMAIN.match(trust_domain):
        raise IdentityRefused(
            f"trust domain {trust_domain!r} is not a lowercase DNS-like name (e.g. edgewave)"
        )
    return trust_domain


def uri(identity: Identity, *, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> str:
    """The URI SAN to put in a certificate for `identity`."""
    validate_trust_domain(trust_domain)
    if identity.role is Role.OPERATOR:
        if identity.name:
            raise IdentityRefused("the operator identity has no name")
        return f"spiffe://{trust_domain}/operator"
    if not _NAME.match(identity.name):
        raise IdentityRefused(f"{identity.role} name {identity.name[:64]!r} is not a valid name")
    return f"spiffe://{trust_domain}/{identity.role}/{identity.name}"


def operator(*, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> str:
    return uri(Identity(Role.OPERATOR), trust_domain=trust_domain)


def agent(name: str, *, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> str:
    return uri(Identity(Role.AGENT, name), trust_domain=trust_domain)


def gateway(name: str, *, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> str:
    return uri(Identity(Role.GATEWAY, name), trust_domain=trust_domain)


def parse_uri(value: str, *, trust_domain: str) -> Identity:
    """The identity a SPIFFE URI names in `trust_domain`; IdentityRefused otherwise."""
    prefix = f"spiffe://{trust_domain}/"
    if not value.startswith(prefix):
        raise IdentityRefused(f"URI {value!r} is not in the trust domain {trust_domain!r}")
    parts = value[len(prefix) :].split("/")
    if parts == ["operator"]:
        return Identity(Role.OPERATOR)
    if len(parts) == 2 and parts[0] in (Role.GATEWAY, Role.AGENT) and _NAME.match(parts[1]):
        return Identity(Role(parts[0]), parts[1])
    raise IdentityRefused(f"URI {value!r} names no Edgewave role (operator, gateway, agent)")


def of_client_certificate(cert_pem: bytes, *, trust_domain: str) -> Identity:
    """The identity a (chain-verified) client certificate speaks for.

    Refused unless it is explicitly for client authentication (an extended key usage
    with clientAuth: TLS stacks accept a certificate without EKU for any use) and carries
    exactly one SPIFFE URI, in `trust_domain`.
    """
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as error:
        raise IdentityRefused(f"the client certificate does not parse ({error})") from None
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise IdentityRefused(
            "the client certificate has no extended key usage: it must be issued for clientAuth"
        ) from None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise IdentityRefused("the client certificate is not issued for clientAuth")
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    spiffe = [u for u in uris if u.startswith("spiffe://")]
    if len(spiffe) != 1:
        raise IdentityRefused(
            f"the client certificate carries {len(spiffe)} SPIFFE URIs, not one: issue it with"
            f" spiffe://{trust_domain}/operator (or .../gateway/<name>)"
        )
    return parse_uri(spiffe[0], trust_domain=trust_domain)


def issue_agent(
    ca: pki.KeyPair,
    *,
    name: str,
    dns_names: tuple[str, ...] = ("localhost",),
    ip_addresses: tuple[str, ...] = ("127.0.0.1",),
    validity: datetime.timedelta = pki.DEFAULT_VALIDITY,
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
) -> pki.KeyPair:
    """An agent's certificate: it serves (control/serving ports) and dials gateways."""
    return pki.issue(
        ca,
        common_name=check_name(name),
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        uris=(agent(name, trust_domain=trust_domain),),
        server=True,
        client=True,
        validity=validity,
    )


def issue_operator(
    ca: pki.KeyPair,
    *,
    validity: datetime.timedelta,
    name: str = "edgewave-operator",
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
) -> pki.KeyPair:
    """The operator's client certificate (agents' control ports and gateways)."""
    return pki.issue(
        ca,
        common_name=name,
        uris=(operator(trust_domain=trust_domain),),
        client=True,
        validity=validity,
    )


def issue_gateway(
    ca: pki.KeyPair,
    *,
    name: str,
    dns_names: tuple[str, ...] = ("localhost",),
    ip_addresses: tuple[str, ...] = ("127.0.0.1",),
    validity: datetime.timedelta = pki.DEFAULT_VALIDITY,
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
) -> pki.KeyPair:
    """A gateway's serving certificate, naming `gateway/<name>`: it speaks for no caller."""
    return pki.issue(
        ca,
        common_name=check_name(name),
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        uris=(gateway(name, trust_domain=trust_domain),),
        server=True,
        validity=validity,
    )
