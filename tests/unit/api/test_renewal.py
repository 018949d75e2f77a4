"""Agents renew their own certificates; nobody renews anyone else's (short-lived certs,
clock passed in)."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edgewave_api import identities, pki, renewal

START = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
LIFE = datetime.timedelta(minutes=30)


def _agent(ca: pki.KeyPair, name: str) -> pki.KeyPair:
    return pki.issue(
        ca,
        common_name=name,
        dns_names=(f"{name}.edge",),
        ip_addresses=("10.0.3.12",),
        uris=(identities.agent(name),),
        server=True,
        client=True,
        validity=LIFE,
        now=START,
    )


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.new_ca("ca")


def test_a_certificate_is_due_when_a_third_of_its_life_is_left(ca: pki.KeyPair) -> None:
    cert = _agent(ca, "edge-a").cert_pem
    # Issued 5 minutes back-dated: 35 minutes of life, due with 11m40s left.
    assert not renewal.due(cert, now=START + datetime.timedelta(minutes=18))
    assert renewal.due(cert, now=START + datetime.timedelta(minutes=19))


def test_an_agent_renews_its_own_certificate_with_its_names(ca: pki.KeyPair) -> None:
    current = _agent(ca, "edge-a")
    key_pem, request = renewal.request(current)
    now = START + datetime.timedelta(minutes=25)
    identity, cert_pem = renewal.sign(ca, request, trust_domain="edgewave", now=now)
    assert identity == identities.Identity(identities.Role.AGENT, "edge-a")
    new, old = (x509.load_pem_x509_certificate(p) for p in (cert_pem, current.cert_pem))
    new.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem))
    san = x509.SubjectAlternativeName
    assert new.extensions.get_extension_for_class(san) == old.extensions.get_extension_for_class(
        san
    )
    # As long a life as the current certificate (35 minutes, back-dating included).
    life = old.not_valid_after_utc - old.not_valid_before_utc
    assert new.not_valid_after_utc == now + life
    assert new.not_valid_after_utc > old.not_valid_after_utc
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert new.public_key() == key.public_key()
    assert new.public_key() != old.public_key()
    assert not renewal.due(cert_pem, now=now)


def test_renewal_is_refused_to_anyone_but_the_holder(ca: pki.KeyPair) -> None:
    a, b = _agent(ca, "edge-a"), _agent(ca, "edge-b")
    now = START + datetime.timedelta(minutes=25)
    _, for_b = renewal.request(b)
    _, for_a = renewal.request(a)
    operator = pki.issue(
        ca, common_name="op", uris=(identities.operator(),), client=True, now=START
    )
    _, for_operator = renewal.request(operator)
    stranger = _agent(pki.new_ca("other"), "edge-a")
    _, for_stranger = renewal.request(stranger)
    cases = {
        # B's CSR and proof presented with A's certificate (a relay trying to renew A for B).
        "proof does not verify": dataclasses.replace(for_b, current_cert_pem=a.cert_pem),
        # A's proof over B's CSR.
        "proof does not verify with agent/edge-a": dataclasses.replace(
            for_a, csr_pem=for_b.csr_pem
        ),
        "only agents renew": for_operator,
        "not issued by this CA": for_stranger,
    }
    for reason, request in cases.items():
        with pytest.raises(renewal.RenewalRefused, match=reason):
            renewal.sign(ca, request, trust_domain="edgewave", now=now)
    with pytest.raises(renewal.RenewalRefused, match="not valid now"):
        renewal.sign(ca, for_a, trust_domain="edgewave", now=START + LIFE * 2)
