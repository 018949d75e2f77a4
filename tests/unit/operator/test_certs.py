"""The operator's client certificate renews itself before it expires (clock passed in)."""

from __future__ import annotations

import datetime

from edgewave_api import identities, pki
from edgewave_operator import certs

START = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)


def test_the_client_certificate_is_reissued_when_a_third_of_its_life_is_left() -> None:
    ca = pki.new_ca("ca")
    now = [START]
    cert = certs.ClientCertificate(ca, validity=datetime.timedelta(days=30), clock=lambda: now[0])
    first = cert.current()
    assert pki.not_after(first.cert_pem) == START + datetime.timedelta(days=30)
    now[0] = START + datetime.timedelta(days=19)
    assert cert.current() == first and cert.issued == 1
    now[0] = START + datetime.timedelta(days=20)
    second = cert.current()
    assert second != first and second.key_pem != first.key_pem and cert.issued == 2
    assert pki.not_after(second.cert_pem) == now[0] + datetime.timedelta(days=30)
    found = identities.of_client_certificate(second.cert_pem, trust_domain="edgewave")
    assert found == identities.Identity(identities.Role.OPERATOR)
    assert cert.current() == second
