"""The leader Lease (coordination.k8s.io/v1): read, create, and compare-and-swap update.

Updates carry the resourceVersion that was read, so two replicas can never both believe
they took the Lease: the second write is a conflict.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from kubernetes_asyncio import client

from edgewave_operator.kube import failures


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    holder: str | None
    renewed_at: datetime.datetime | None
    acquired_at: datetime.datetime | None
    duration_seconds: int
    transitions: int
    resource_version: str | None


def _record(lease: client.V1Lease) -> LeaseRecord:
    spec = lease.spec or client.V1LeaseSpec()
    return LeaseRecord(
        holder=spec.holder_identity,
        renewed_at=spec.renew_time or spec.acquire_time,
        acquired_at=spec.acquire_time,
        duration_seconds=int(spec.lease_duration_seconds or 0),
        transitions=int(spec.lease_transitions or 0),
        resource_version=lease.metadata.resource_version if lease.metadata else None,
    )


async def read(api: client.ApiClient, *, namespace: str, name: str) -> LeaseRecord | None:
    try:
        lease = await failures.call(
            client.CoordinationV1Api(api).read_namespaced_lease(name, namespace),
            doing=f"reading Lease {namespace}/{name}",
        )
    except failures.NotFound:
        return None
    return _record(lease)


async def write(
    api: client.ApiClient,
    *,
    namespace: str,
    name: str,
    holder: str,
    duration_seconds: int,
    now: datetime.datetime,
    previous: LeaseRecord | None,
) -> LeaseRecord:
    """Create the Lease (previous None) or replace it if unchanged since `previous` was read.

    Raises `failures.Conflict` when another replica wrote first.
    """
    taking_over = previous is None or previous.holder != holder
    transitions = 0 if previous is None else previous.transitions + (1 if taking_over else 0)
    acquired = now if taking_over or previous is None else previous.acquired_at
    spec = client.V1LeaseSpec(
        holder_identity=holder,
        lease_duration_seconds=duration_seconds,
        renew_time=now,
        acquire_time=acquired,
        lease_transitions=transitions,
    )
    coordination = client.CoordinationV1Api(api)
    what = f"writing Lease {namespace}/{name}"
    if previous is None:
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=name, namespace=namespace), spec=spec
        )
        lease = await failures.call(
            coordination.create_namespaced_lease(namespace, body), doing=what
        )
    else:
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=name, namespace=namespace, resource_version=previous.resource_version
            ),
            spec=spec,
        )
        lease = await failures.call(
            coordination.replace_namespaced_lease(name, namespace, body), doing=what
        )
    return _record(lease)
