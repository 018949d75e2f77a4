"""Roles in certificates: building and reading SPIFFE URIs, refusing what names no role."""

from __future__ import annotations

import pytest

from edgewave_api import identities, pki
from edgewave_api.identities import Identity, Role


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.new_ca("test-ca")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("spiffe://edgewave/operator", Identity(Role.OPERATOR)),
        ("spiffe://edgewave/gateway/gw-1", Identity(Role.GATEWAY, "gw-1")),
        ("spiffe://edgewave/agent/edge-1", Identity(Role.AGENT, "edge-1")),
    ],
)
def test_uris_name_roles(uri: str, expected: Identity) -> None:
    assert identities.parse_uri(uri, trust_domain="edgewave") == expected
    assert identities.uri(expected) == uri


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("spiffe://other/operator", "not in the trust domain"),
        ("spiffe://edgewave.evil/operator", "not in the trust domain"),
        ("spiffe://edgewave/operator/x", "names no Edgewave role"),
        ("spiffe://edgewave/admin", "names no Edgewave role"),
        ("spiffe://edgewave/agent/", "names no Edgewave role"),
        ("spiffe://edgewave/agent/a/b", "names no Edgewave role"),
    ],
)
def test_other_uris_are_refused(uri: str, reason: str) -> None:
    with pytest.raises(identities.IdentityRefused, match=reason):
        identities.parse_uri(uri, trust_domain="edgewave")


def test_a_client_certificate_speaks_for_its_one_role(ca: pki.KeyPair) -> None:
    cert = pki.issue(ca, common_name="x", uris=(identities.operator(),), client=True)
    found = identities.of_client_certificate(cert.cert_pem, trust_domain="edgewave")
    assert found == Identity(Role.OPERATOR)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"uris": (identities.operator(),), "server": True}, "not issued for clientAuth"),
        ({"client": True}, "0 SPIFFE URIs"),
        (
            {"uris": (identities.operator(), identities.gateway("g")), "client": True},
            "2 SPIFFE URIs",
        ),
    ],
)
def test_client_certificates_without_one_role_are_refused(
    ca: pki.KeyPair, kwargs: dict[str, object], reason: str
) -> None:
    cert = pki.issue(ca, common_name="x", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(identities.IdentityRefused, match=reason):
        identities.of_client_certificate(cert.cert_pem, trust_domain="edgewave")
