"""Kubernetes Events about Edgewave objects (core/v1, what `kubectl describe` shows).

Events are API writes too, so callers post them on transitions only (wave started,
passed, failed, rollback, eviction), never per probe. Failing to post an Event is logged
and swallowed: an audit line in the log remains, and a rollout never stops for it.
"""

from __future__ import annotations

import datetime
import logging
import secrets
from dataclasses import dataclass

from kubernetes_asyncio import client

from edgewave_api import edgeagent, meta
from edgewave_api.errors import EdgewaveError
from edgewave_operator.kube import failures

log = logging.getLogger(__name__)

COMPONENT = "edgewave-operator"
CLUSTER_EVENTS_NAMESPACE = "default"
MAX_MESSAGE = 1024


@dataclass(frozen=True, slots=True)
class ObjectRef:
    kind: str
    name: str
    uid: str
    namespace: str | None = None
    api_version: str = meta.API_VERSION


def agent_ref(agent: edgeagent.EdgeAgent) -> ObjectRef:
    return ObjectRef(kind="EdgeAgent", name=agent.metadata.name or "", uid=agent.metadata.uid or "")


async def post(
    api: client.ApiClient,
    *,
    about: ObjectRef,
    type_: str,
    reason: str,
    message: str,
    now: datetime.datetime,
    instance: str = "",
) -> None:
    """Record one Event about `about` (cluster-scoped objects: in `default`)."""
    namespace = about.namespace or CLUSTER_EVENTS_NAMESPACE
    body = client.CoreV1Event(
        metadata=client.V1ObjectMeta(
            name=f"{about.name}.{secrets.token_hex(8)}", namespace=namespace
        ),
        involved_object=client.V1ObjectReference(
            api_version=about.api_version,
            kind=about.kind,
            name=about.name,
            namespace=about.namespace,
            uid=about.uid,
        ),
        type=type_,
        reason=reason,
        message=message[:MAX_MESSAGE],
        first_timestamp=now,
        last_timestamp=now,
        count=1,
        source=client.V1EventSource(component=COMPONENT),
        reporting_component=COMPONENT,
        reporting_instance=instance or COMPONENT,
    )
    try:
        await failures.call(
            client.CoreV1Api(api).create_namespaced_event(namespace, body),
            doing=f"recording event {reason} for {about.kind}/{about.name}",
        )
    except EdgewaveError as error:
        log.warning("event not recorded: %s", error)
