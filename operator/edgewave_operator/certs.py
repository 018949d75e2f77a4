"""The operator's trust material: its CA, its client certificate, the activation key.

The CA (a `kubernetes.io/tls` Secret with `ca.crt`) and the Ed25519 activation signing key
live in Secrets the operator creates if absent, in its own namespace. The operator issues
itself a short-lived client certificate from that CA (the agents' control ports require
one, naming the operator's role: `edgewave_api.identities`) and reissues it when a third of
its life is left (`ClientCertificate`, clock passed in), so it never expires under a
long-lived process; agent clients pick the new one up (`AgentClient(renew_tls=...)`). For
the dev/demo flow it can also issue agents' certificates.
Production users bring their own CA: an EdgeAgent's `spec.tlsSecretRef` names a TLS Secret
(`tls.crt`, `tls.key`, `ca.crt`) used as the client identity and trust for that agent.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from kubernetes_asyncio import client

from edgewave_api import identities, pki, renewal, signing
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


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ClientCertificate:
    """The operator's own client certificate, reissued from the CA before it expires.

    `current()` is cheap and thread-safe; it reissues once `now` passes the renewal time
    (`renewal.RENEW_WHEN_LEFT` of the validity before expiry, as for agents). Each reissue
    has a new key.
    """

    def __init__(
        self,
        ca: pki.KeyPair,
        *,
        validity: datetime.timedelta = CLIENT_VALIDITY,
        trust_domain: str = identities.DEFAULT_TRUST_DOMAIN,
        clock: Callable[[], datetime.datetime] = _utcnow,
    ) -> None:
        self._ca = ca
        self._validity = validity
        self._uri = identities.operator(trust_domain=trust_domain)
        self._clock = clock
        self._lock = threading.Lock()
        self._current, self.renew_at = self._issue()
        self.issued = 1

    def _issue(self) -> tuple[pki.KeyPair, datetime.datetime]:
        now = self._clock()
        pair = pki.issue(
            self._ca,
            common_name=CLIENT_COMMON_NAME,
            uris=(self._uri,),
            client=True,
            validity=self._validity,
            now=now,
        )
        return pair, pki.not_after(pair.cert_pem) - self._validity * renewal.RENEW_WHEN_LEFT

    def current(self) -> pki.KeyPair:
        with self._lock:
            if self._clock() >= self.renew_at:
                self._current, self.renew_at = self._issue()
                self.issued += 1
            return self._current


@dataclass(frozen=True)
class TrustMaterial:
    ca: pki.KeyPair
    ca_pem: bytes
    client_certificate: ClientCertificate = field(compare=False)
    signing_key: signing.SigningKey

    @property
    def credentials(self) -> Credentials:
        """The CA and the operator's client certificate as of now (renewed when due)."""
        return Credentials(ca_pem=self.ca_pem, client=self.client_certificate.current())


def _new_ca() -> dict[str, bytes]:
    ca = pki.new_ca(CA_COMMON_NAME)
    return {"tls.crt": ca.cert_pem, "tls.key": ca.key_pem, "ca.crt": ca.cert_pem}


def _new_signing_key() -> dict[str, bytes]:
    key = signing.new_signing_key()
    return {"ed25519.key": key.private_pem, "ed25519.pub": key.public_pem}


async def load(
    api: client.ApiClient,
    *,
    namespace: str,
    ca_secret: str,
    signing_secret: str,
    trust_domain: str = identities.DEFAULT_TRUST_DOMAIN,
) -> TrustMaterial:
    """Read (or create once) the CA and signing key; issue this process's client cert
    (renewed by `ClientCertificate` as it ages)."""
    ca_data = await secrets.read_or_create(
        api, namespace=namespace, name=ca_secret, make=_new_ca, secret_type="kubernetes.io/tls"
    )
    ca = pki.KeyPair(cert_pem=ca_data["tls.crt"], key_pem=ca_data["tls.key"])
    key_data = await secrets.read_or_create(
        api, namespace=namespace, name=signing_secret, make=_new_signing_key
    )
    return TrustMaterial(
        ca=ca,
        ca_pem=ca_data.get("ca.crt", ca.cert_pem),
        client_certificate=ClientCertificate(ca, trust_domain=trust_domain),
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
