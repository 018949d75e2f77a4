"""Roles from certificates, metadata across the tunnel, the agent's reconnect backoff."""

from __future__ import annotations

import datetime
import random

import pytest

from edgewave_agent.dialing import backoff_delay
from edgewave_api import identities, pki
from edgewave_gateway import frames
from edgewave_proto.gateway.v1 import gateway_pb2 as gw

CA = pki.new_ca("test-ca")


def test_roles_come_from_the_spiffe_uri() -> None:
    agent = identities.of_client_certificate(
        identities.issue_agent(CA, name="edge-1").cert_pem, trust_domain="edgewave"
    )
    assert (agent.role, agent.name) == (identities.Role.AGENT, "edge-1")
    operator = identities.issue_operator(CA, validity=datetime.timedelta(days=1))
    identity = identities.of_client_certificate(operator.cert_pem, trust_domain="edgewave")
    assert identity.role is identities.Role.OPERATOR
    # A gateway's serving certificate names its role, and is no client certificate.
    gateway = identities.issue_gateway(CA, name="gw-1")
    with pytest.raises(identities.IdentityRefused, match="not issued for clientAuth"):
        identities.of_client_certificate(gateway.cert_pem, trust_domain="edgewave")


@pytest.mark.parametrize(
    ("pair", "match"),
    [
        # The Organization names no role any more; only the URI does.
        (
            pki.issue(CA, common_name="edge-1", organization="edgewave-agents", client=True),
            "carries 0 SPIFFE URIs",
        ),
        (
            pki.issue(CA, common_name="x", uris=(identities.agent("x"),), server=True),
            "not issued for clientAuth",
        ),
        (
            pki.issue(CA, common_name="x", uris=("spiffe://edgewave/agent/Edge_1/x",), client=True),
            "names no Edgewave role",
        ),
    ],
)
def test_certificates_without_a_usable_role_are_refused(pair: pki.KeyPair, match: str) -> None:
    with pytest.raises(identities.IdentityRefused, match=match):
        identities.of_client_certificate(pair.cert_pem, trust_domain="edgewave")


def test_names_are_checked_before_they_become_uris() -> None:
    with pytest.raises(identities.IdentityRefused, match="must be 1-253 characters"):
        identities.issue_agent(CA, name="edge 1")
    with pytest.raises(identities.IdentityRefused, match="must be 1-253 characters"):
        identities.check_name("-x")


def test_garbage_is_not_a_certificate() -> None:
    with pytest.raises(identities.IdentityRefused, match="does not parse"):
        identities.of_client_certificate(
            b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
            trust_domain="edgewave",
        )


def test_transport_keys_never_cross_the_tunnel() -> None:
    relayed = frames.to_frames(
        [
            ("traceparent", "00-abc-def-01"),
            ("edgewave-agent", "edge-1"),
            ("edgewave-caller-cert-bin", b"forged"),
            (":authority", "x"),
            ("grpc-timeout", "1S"),
            ("blob-bin", b"\x00\x01"),
        ]
    )
    assert [(f.key, f.value or f.binary) for f in relayed] == [
        ("traceparent", "00-abc-def-01"),
        ("blob-bin", b"\x00\x01"),
    ]
    # Whatever a sender puts in frames, the receiving side drops transport keys too.
    forged = [
        gw.Metadata(key="edgewave-caller-cert-bin", binary=b"x"),
        gw.Metadata(key="a", value="b"),
    ]
    assert frames.from_frames(forged) == (("a", "b"),)


def test_metadata_to_relay_is_bounded() -> None:
    with pytest.raises(ValueError, match="metadata too large"):
        frames.to_frames([(f"k{i}", "v") for i in range(frames.MAX_METADATA_ENTRIES + 1)])
    with pytest.raises(ValueError, match="metadata too large"):
        frames.to_frames([("k", "v" * (frames.MAX_METADATA_BYTES + 1))])


def test_backoff_grows_is_jittered_and_capped() -> None:
    rng = random.Random(0)
    delays = [backoff_delay(n, initial=0.5, maximum=30.0, rng=rng) for n in range(12)]
    for failures, delay in enumerate(delays):
        step = min(30.0, 0.5 * 2**failures)
        assert step / 2 <= delay <= step
    assert max(delays) <= 30.0
    assert backoff_delay(10_000, initial=0.5, maximum=30.0, rng=rng) <= 30.0
    assert len({round(d, 6) for d in delays[-4:]}) == 4  # jittered, not all equal
