"""An agent's certificate renews over its connection (issue #14 item 9): real mTLS.

The operator side is `AgentClient.renew_certificate` with the operator's CA signing
(`renewal.sign`), as the operator's inventory does when a probe finds the certificate
due. What the agent serves is read from real TLS handshakes on both ports; every refused
certificate leaves the served one as it was.
"""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import stat
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgewave_agent import testing
from edgewave_api import identities, pki, renewal
from edgewave_operator.agents.client import AgentClient
from edgewave_proto.agent.v1 import agent_pb2 as pb
from edgewave_proto.agent.v1 import agent_pb2_grpc
from tests.integration.agent.conftest import client_tls

pytestmark = pytest.mark.integration
StartAgent = Callable[..., testing.AgentProcess]
NOT_A_CERTIFICATE = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"


def _agent_cert(ca: pki.KeyPair, name: str, *, left: datetime.timedelta) -> pki.KeyPair:
    return pki.issue(
        ca,
        common_name=name,
        dns_names=("localhost",),
        ip_addresses=("127.0.0.1",),
        uris=(identities.agent(name),),
        server=True,
        client=True,
        validity=left,
    )


def _start(
    start_agent: StartAgent, tmp_path: Path, name: str, pair: pki.KeyPair
) -> testing.AgentProcess:
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}-key.pem"
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)
    return start_agent(name, tls={"cert_file": str(cert), "key_file": str(key)})


def _served(
    port: int, ca: pki.KeyPair, *, client: pki.KeyPair | None, tmp: Path
) -> x509.Certificate:
    """The certificate a port presents in a fresh TLS handshake (verified against `ca`)."""
    context = ssl.create_default_context(cadata=ca.cert_pem.decode())
    context.set_alpn_protocols(["h2"])
    if client is not None:
        (tmp / "client.pem").write_bytes(client.cert_pem)
        (tmp / "client-key.pem").write_bytes(client.key_pem)
        context.load_cert_chain(tmp / "client.pem", tmp / "client-key.pem")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _certify(
    ca: pki.KeyPair, *, validity: datetime.timedelta
) -> Callable[[renewal.RenewalRequest], bytes]:
    def certify(request: renewal.RenewalRequest) -> bytes:
        now = datetime.datetime.now(datetime.UTC)
        _identity, cert_pem = renewal.sign(
            ca, request, trust_domain="edgewave", now=now, validity=validity
        )
        return cert_pem

    return certify


def test_an_agent_renews_its_certificate_over_its_connection(
    start_agent: StartAgent, agent_pki: testing.Pki, tmp_path: Path
) -> None:
    first = _agent_cert(agent_pki.ca, "edge-renew", left=datetime.timedelta(seconds=6))
    agent = _start(start_agent, tmp_path, "edge-renew", first)
    old = x509.load_pem_x509_certificate(first.cert_pem)

    async def renew() -> tuple[pb.DescribeResponse, datetime.datetime]:
        async with AgentClient(agent.control, tls=client_tls(agent_pki), timeout=10) as client:
            described = await client.describe()
            expires = await client.renew_certificate(
                _certify(agent_pki.ca, validity=datetime.timedelta(hours=1))
            )
            return described, expires

    described, expires = asyncio.run(renew())
    validity = (
        datetime.datetime.fromtimestamp(
            described.certificate_not_before_unix_seconds, datetime.UTC
        ),
        datetime.datetime.fromtimestamp(described.certificate_not_after_unix_seconds, datetime.UTC),
    )
    assert validity == (old.not_valid_before_utc, old.not_valid_after_utc)
    assert renewal.due_between(*validity, now=datetime.datetime.now(datetime.UTC))
    # Both ports present the new certificate from their next handshake on, no restart.
    control = _served(agent.control_port, agent_pki.ca, client=agent_pki.operator, tmp=tmp_path)
    serving = _served(agent.serving_port, agent_pki.ca, client=None, tmp=tmp_path)
    assert control.serial_number == serving.serial_number != old.serial_number
    assert control.not_valid_after_utc == expires > old.not_valid_after_utc
    identity_dir = Path(agent.config["data_dir"]) / "identity"
    assert stat.S_IMODE(identity_dir.stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in identity_dir.iterdir()} == {
        "cert.pem": 0o600,
        "key.pem": 0o600,
    }

    # After the first certificate has expired, new connections still work; and a restart
    # keeps the renewed certificate (the configured file still holds the expired one).
    for _ in range(100):  # bounded: it expires within 6 s
        if datetime.datetime.now(datetime.UTC) > old.not_valid_after_utc + datetime.timedelta(
            seconds=1
        ):
            break
        time.sleep(0.1)
    agent.kill()
    agent.start()

    async def describe() -> pb.DescribeResponse:
        async with AgentClient(agent.control, tls=client_tls(agent_pki), timeout=10) as client:
            return await client.describe()

    after = asyncio.run(describe())
    assert after.certificate_not_after_unix_seconds == int(expires.timestamp())
    restarted = _served(agent.serving_port, agent_pki.ca, client=None, tmp=tmp_path)
    assert restarted.serial_number == control.serial_number


def _certificate_for(
    csr_pem: bytes,
    issuer: pki.KeyPair,
    *,
    name: str,
    validity: datetime.timedelta,
    server: bool = True,
) -> bytes:
    """A certificate for the CSR's key, as a careless or hostile authority might issue it."""
    csr = x509.load_pem_x509_csr(csr_pem)
    issuer_cert = x509.load_pem_x509_certificate(issuer.cert_pem)
    issuer_key = serialization.load_pem_private_key(issuer.key_pem, password=None)
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + (
        [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.UniformResourceIdentifier(identities.agent(name))]
            ),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_an_agent_takes_only_a_certificate_for_its_pending_key_its_name_and_its_ca(
    start_agent: StartAgent, agent_pki: testing.Pki, tmp_path: Path
) -> None:
    name = "edge-strict"
    own = _agent_cert(agent_pki.ca, name, left=datetime.timedelta(hours=2))
    agent = _start(start_agent, tmp_path, name, own)
    hour, day = datetime.timedelta(hours=1), datetime.timedelta(days=1)

    def channel(as_: pki.KeyPair) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(agent_pki.ca.cert_pem, as_.key_pem, as_.cert_pem)
        return grpc.aio.secure_channel(agent.control, credentials)

    async def refusals() -> list[tuple[str, grpc.StatusCode, str]]:
        seen: list[tuple[str, grpc.StatusCode, str]] = []

        async def attempt(case: str, call: Callable[[], object]) -> None:
            try:
                await call()  # type: ignore[misc]
            except grpc.aio.AioRpcError as error:
                seen.append((case, error.code(), error.details() or ""))
            else:
                seen.append((case, grpc.StatusCode.OK, ""))

        async with channel(agent_pki.operator) as operator, channel(own) as itself:
            stub, self_stub = (agent_pb2_grpc.AgentServiceStub(c) for c in (operator, itself))
            install = stub.InstallCertificate
            await attempt(
                "nothing pending",
                lambda: install(
                    pb.InstallCertificateRequest(
                        cert_pem=_certificate_for(_csr(), agent_pki.ca, name=name, validity=day)
                    )
                ),
            )
            await attempt(
                "the agent's own certificate asks",
                lambda: self_stub.RequestRenewal(pb.RequestRenewalRequest()),
            )
            asked = await stub.RequestRenewal(pb.RequestRenewalRequest())
            other_ca = pki.new_ca("someone-else")
            for case, cert_pem in {
                "another CA": _certificate_for(asked.csr_pem, other_ca, name=name, validity=day),
                "another key": _agent_cert(agent_pki.ca, name, left=day).cert_pem,
                "another agent": _certificate_for(
                    asked.csr_pem, agent_pki.ca, name="edge-other", validity=day
                ),
                "expires first": _certificate_for(
                    asked.csr_pem, agent_pki.ca, name=name, validity=hour
                ),
                "no serverAuth": _certificate_for(
                    asked.csr_pem, agent_pki.ca, name=name, validity=day, server=False
                ),
                "not a certificate": NOT_A_CERTIFICATE,
            }.items():
                await attempt(
                    case, lambda c=cert_pem: install(pb.InstallCertificateRequest(cert_pem=c))
                )
            unchanged = await asyncio.to_thread(
                _served, agent.serving_port, agent_pki.ca, client=None, tmp=tmp_path
            )
            seen.append(("unchanged so far", grpc.StatusCode.OK, str(unchanged.serial_number)))
            # The right one, for the same pending key, is still taken afterwards.
            good = _certificate_for(asked.csr_pem, agent_pki.ca, name=name, validity=day)
            await attempt(
                "the right one", lambda: install(pb.InstallCertificateRequest(cert_pem=good))
            )
        return seen

    before = _served(agent.serving_port, agent_pki.ca, client=None, tmp=tmp_path)
    assert before.serial_number == x509.load_pem_x509_certificate(own.cert_pem).serial_number
    results = asyncio.run(refusals())
    expected = {
        "nothing pending": (grpc.StatusCode.FAILED_PRECONDITION, "no renewal is pending"),
        "the agent's own certificate asks": (grpc.StatusCode.PERMISSION_DENIED, "operator"),
        "another CA": (grpc.StatusCode.PERMISSION_DENIED, "not issued by a CA this agent trusts"),
        "another key": (
            grpc.StatusCode.INVALID_ARGUMENT,
            "not for the key of this agent's pending",
        ),
        "another agent": (grpc.StatusCode.PERMISSION_DENIED, "agent/edge-other, not this agent"),
        "expires first": (grpc.StatusCode.INVALID_ARGUMENT, "not after the current one"),
        "no serverAuth": (grpc.StatusCode.INVALID_ARGUMENT, "not issued for serverAuth"),
        "not a certificate": (grpc.StatusCode.INVALID_ARGUMENT, "not a PEM certificate"),
        "unchanged so far": (grpc.StatusCode.OK, str(before.serial_number)),
        "the right one": (grpc.StatusCode.OK, ""),
    }
    assert [case for case, _, _ in results] == list(expected)
    for case, code, details in results:
        assert (code, expected[case][1] in details) == (expected[case][0], True), (case, details)
    after = _served(agent.serving_port, agent_pki.ca, client=None, tmp=tmp_path)
    assert after.serial_number != before.serial_number
    assert after.not_valid_after_utc > before.not_valid_after_utc


def _csr() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)
