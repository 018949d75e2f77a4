"""The operator's trust material: its CA, its client certificate, the activation key.

The CA (a `kubernetes.io/tls` Secret with `ca.crt`) and the Ed25519 activation signing key
live in Secrets the operator creates if absent, in its own namespace. At start-up the
operator issues itself a short-lived client certificate from that CA (the agents' control
ports require one) and, for the dev/demo flow, can issue agents' serving certificates.
Production users bring their own CA: an EdgeAgent's `spec.tlsSecretRef` names a TLS Secret
(`tls.crt`, `tls.key`, `ca.crt`) used as the client identity and trust for that agent.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from kubernetes_asyncio import client

from edgewave_api import identities, pki, signing
from edgewave_operator.kube import secrets

CLIENT_VALIDITY = datetime.timedelta(days=30)
CA_COMMON_NAME = "edgewave-operator-ca"
CLIENT_COMMON_NAME = "edgewave-operator"


@dataclass(frozen=True)
class Credentials:
    """What the operator presents to agents and how it checks them."""

    ca_pem: bytes
    """Trusted roots for agents' serving certificates."""
    client: pki.KeyPair
    """The operator's client certificate (signed by the CA)."""


@dataclass(frozen=True)
class TrustMaterial:
    ca: pki.KeyPair
    credentials: Credentials
    signing_key: signing.SigningKey


def _new_ca() -> dict[str, bytes]:
    ca = pki.new_ca(CA_COMMON_NAME)
    return {"tls.crt": ca.cert_pem, "tls.key": ca.key_pem, "ca.crt": ca.cert_pem}


def _new_signing_key() -> dict[str, bytes]:
    key = signing.new_signing_key()
    return {"ed25519.key": key.private_pem, "ed25519.pub": key.public_pem}


async def load(
    api: client.ApiClient, *, namespace: str, ca_secret: str, signing_secret: str
) -> TrustMaterial:
    """Read (or create once) the CA and signing key; issue this process's client cert."""
    ca_data = await secrets.read_or_create(
        api, namespace=namespace, name=ca_secret, make=_new_ca, secret_type="kubernetes.io/tls"
    )
    ca = pki.KeyPair(cert_pem=ca_data["tls.crt"], key_pem=ca_data["tls.key"])
    key_data = await secrets.read_or_create(
        api, namespace=namespace, name=signing_secret, make=_new_signing_key
    )
    return TrustMaterial(
        ca=ca,
        credentials=Credentials(
            ca_pem=ca_data.get("ca.crt", ca.cert_pem),
            client=pki.issue(
                ca,
                common_name=CLIENT_COMMON_NAME,
                uris=(identities.operator(),),
                client=True,
                validity=CLIENT_VALIDITY,
            ),
        ),
        signing_key=signing.SigningKey(
            private_pem=key_data["ed25519.key"], public_pem=key_data["ed25519.pub"]
        ),
    )


async def from_secret_ref(api: client.ApiClient, *, namespace: str, name: str) -> Credentials:
    """Bring-your-own CA: client identity and trust from a TLS Secret with `ca.crt`."""
    data = await secrets.read(api, namespace=namespace, name=name)
    return Credentials(
        ca_pem=data["ca.crt"],
        client=pki.KeyPair(cert_pem=data["tls.crt"], key_pem=data["tls.key"]),
    )


def agent_serving_cert(
    ca: pki.KeyPair,
    *,
    agent: str,
    hosts: tuple[str, ...] = ("localhost",),
    ips: tuple[str, ...] = ("127.0.0.1",),
) -> pki.KeyPair:
    """An agent's certificate (dev/demo), serving `hosts` and `ips`, role agent/<name>."""
    return pki.issue(
        ca,
        common_name=agent,
        dns_names=hosts,
        ip_addresses=ips,
        uris=(identities.agent(agent),),
        # clientAuth as well: an agent authenticates with it when it dials out (to a
        # gateway); its role URI keeps it from ever commanding another agent.
        server=True,
        client=True,
    )
