"""The PKI material one dev control plane needs, made with `edgewave_api.pki`.

A CA, the API server's serving certificate (loopback and in-cluster names), the
service-account signing key pair and an admin client certificate in `system:masters`.
`generate` only computes; `write` puts the files where `commandlines.Files` says, private
keys readable by the owner only.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgewave_api import pki
from edgewave_operator.devcluster import commandlines

ADMIN_USER = "edgewave-admin"
ADMIN_GROUP = "system:masters"


@dataclass(frozen=True)
class Credentials:
    ca: pki.KeyPair
    serving: pki.KeyPair
    admin: pki.KeyPair
    service_account_key_pem: bytes
    service_account_pub_pem: bytes


def generate() -> Credentials:
    ca = pki.new_ca("edgewave-dev-ca")
    serving = pki.issue(
        ca,
        common_name="kube-apiserver",
        dns_names=commandlines.SERVING_DNS_NAMES,
        ip_addresses=commandlines.SERVING_IP_ADDRESSES,
        server=True,
    )
    admin = pki.issue(ca, common_name=ADMIN_USER, organization=ADMIN_GROUP, client=True)
    sa_key = pki.new_signing_key_pem()
    return Credentials(
        ca=ca,
        serving=serving,
        admin=admin,
        service_account_key_pem=sa_key,
        service_account_pub_pem=pki.public_key_pem(sa_key),
    )


def write(credentials: Credentials, files: commandlines.Files) -> None:
    files.pki.mkdir(parents=True, exist_ok=True, mode=0o700)
    public = {
        files.ca_cert: credentials.ca.cert_pem,
        files.serving_cert: credentials.serving.cert_pem,
        files.admin_cert: credentials.admin.cert_pem,
        files.service_account_pub: credentials.service_account_pub_pem,
    }
    private = {
        files.serving_key: credentials.serving.key_pem,
        files.admin_key: credentials.admin.key_pem,
        files.service_account_key: credentials.service_account_key_pem,
    }
    for path, content in public.items():
        path.write_bytes(content)
    for path, content in private.items():
        path.touch(mode=0o600)
        path.write_bytes(content)
