"""Renders the admin kubeconfig of a dev control plane.

Pure. Certificates are embedded as `*-data` fields, so the file alone is enough for
kubectl, helm, kopf and kubernetes_asyncio; nothing else in the work directory is needed.
"""

from __future__ import annotations

import base64

from edgewave_api import kubeyaml

DEFAULT_NAME = "edgewave-dev"


def _b64(pem: bytes) -> str:
    return base64.b64encode(pem).decode("ascii")


def render(
    *,
    server: str,
    ca_pem: bytes,
    client_cert_pem: bytes,
    client_key_pem: bytes,
    name: str = DEFAULT_NAME,
) -> str:
    """A kubeconfig with one cluster, one user and one current context, all named `name`."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": name,
                "user": {
                    "client-certificate-data": _b64(client_cert_pem),
                    "client-key-data": _b64(client_key_pem),
                },
            }
        ],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}
        ],
        "current-context": name,
        "preferences": {},
    }
    return kubeyaml.dump(config)
