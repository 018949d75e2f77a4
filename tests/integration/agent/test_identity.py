"""Only the operator may command an agent: roles in certificates, real mTLS.

Every certificate below is signed by the agent's own CA, so the TLS handshake succeeds;
what refuses them is the role check (`edgewave_agent.authorizing`).
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgewave_agent import testing
from edgewave_api import identities, pki
from edgewave_operator.agents import errors
from edgewave_operator.agents.artifacts import Artifact
from edgewave_operator.agents.client import AgentClient, ClientTls

pytestmark = pytest.mark.integration


def _without_eku(ca: pki.KeyPair) -> pki.KeyPair:
    """A leaf with the operator's URI but no extended key usage (OpenSSL accepts it as a
    client certificate: it is usable for anything)."""
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "no-eku")]))
        .issuer_name(x509.load_pem_x509_certificate(ca.cert_pem).subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identities.operator())]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return pki.KeyPair(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _callers(ca: pki.KeyPair) -> dict[str, pki.KeyPair]:
    return {
        # The agent's own serving certificate (the test PKI's, valid for localhost).
        "own agent certificate": pki.KeyPair(b"", b""),
        "no extended key usage": _without_eku(ca),
        "another agent, serverAuth+clientAuth": pki.issue(
            ca,
            common_name="edge-2",
            dns_names=("localhost",),
            uris=(identities.agent("edge-2"),),
            server=True,
            client=True,
        ),
        # A gateway relays the operator's calls; its own certificate commands nothing.
        "a gateway, clientAuth": pki.issue(
            ca, common_name="gw-1", uris=(identities.gateway("gw-1"),), client=True
        ),
        "no role": pki.issue(ca, common_name="edgewave-operator", client=True),
        "another trust domain": pki.issue(
            ca,
            common_name="edgewave-operator",
            uris=(identities.operator(trust_domain="elsewhere"),),
            client=True,
        ),
    }


def test_only_the_operator_identity_may_change_an_agent(
    start_agent: Callable[..., testing.AgentProcess],
    connect: Callable[..., AgentClient],
    agent_pki: testing.Pki,
    tmp_path: Path,
) -> None:
    agent = start_agent("edge-identity")
    path, digest = testing.write_artifact(tmp_path, testing.linear_model(scale=2.0))
    artifact = Artifact.from_file(path)

    async def scenario() -> None:
        callers = _callers(agent_pki.ca)
        callers["own agent certificate"] = agent_pki.server
        for label, pair in callers.items():
            tls = ClientTls(
                ca_pem=agent_pki.ca.cert_pem, cert_pem=pair.cert_pem, key_pem=pair.key_pem
            )
            async with AgentClient(
                agent.control,
                tls=tls,
                signing_key_pem=agent_pki.signing_key.private_pem,
                timeout=10,
                name="edge-identity",
            ) as client:
                for call in (
                    lambda: client.push(artifact, attempts=1),
                    lambda: client.activate(
                        rollout="r1", model="m", version="1", digest=digest, backend="onnxruntime"
                    ),
                    lambda: client.rollback("m", rollout="r1"),
                    lambda: client.remove("m", rollout="r1", version="1"),
                    lambda: client.build("{}"),
                ):
                    with pytest.raises(errors.AgentNotAuthorized) as caught:
                        await call()
                    assert "(PERMISSION_DENIED)" in str(caught.value), label
        # The operator's certificate still works, on the same agent.
        async with connect(agent) as operator:
            await operator.push(artifact)
            activated = await operator.activate(
                rollout="r1", model="m", version="1", digest=digest, backend="onnxruntime"
            )
            assert activated.model.active_version == "1"

    asyncio.run(scenario())
