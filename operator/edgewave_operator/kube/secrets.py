"""Secrets the operator owns (its CA, its activation signing key): read, or create once.

Two replicas starting together may both try to create; the loser of the race reads what
the winner wrote, so there is only ever one CA and one signing key.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping

from kubernetes_asyncio import client

from edgewave_operator.kube import failures


def _decode(data: Mapping[str, str] | None) -> dict[str, bytes]:
    return {key: base64.b64decode(value) for key, value in (data or {}).items()}


async def read(api: client.ApiClient, *, namespace: str, name: str) -> dict[str, bytes]:
    """The Secret's data, decoded; raises `failures.NotFound` when absent."""
    secret = await failures.call(
        client.CoreV1Api(api).read_namespaced_secret(name, namespace),
        doing=f"reading Secret {namespace}/{name}",
    )
    return _decode(secret.data)


async def read_or_create(
    api: client.ApiClient,
    *,
    namespace: str,
    name: str,
    make: Callable[[], Mapping[str, bytes]],
    secret_type: str = "Opaque",
) -> dict[str, bytes]:
    """The Secret's data; created from `make()` first if it does not exist."""
    try:
        return await read(api, namespace=namespace, name=name)
    except failures.NotFound:
        pass
    data = dict(make())
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=name,
            namespace=namespace,
            labels={"app.kubernetes.io/managed-by": "edgewave-operator"},
        ),
        type=secret_type,
        data={key: base64.b64encode(value).decode() for key, value in data.items()},
    )
    try:
        await failures.call(
            client.CoreV1Api(api).create_namespaced_secret(namespace, body),
            doing=f"creating Secret {namespace}/{name}",
        )
    except failures.Conflict:
        return await read(api, namespace=namespace, name=name)
    return data
