"""What the agent inventory writes to the cluster: EdgeAgent status patches and Events.

The inventory (`agents.inventory`) knows no Kubernetes client; the runtime hands it this
object, so the `agents` and `kube` layers stay independent of each other.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes_asyncio import client

from edgewave_api import edgeagent
from edgewave_operator.kube import events, patching


class AgentRecords:
    def __init__(self, api: client.ApiClient, *, clock: Callable[[], datetime.datetime]) -> None:
        self._api = api
        self._clock = clock

    async def write_status(
        self, name: str, *, old: Mapping[str, Any] | None, new: Mapping[str, Any]
    ) -> None:
        await patching.patch_status(
            self._api,
            plural="edgeagents",
            name=name,
            namespace=None,
            status=patching.merge_patch(old, new),
        )

    async def warn(self, agent: edgeagent.EdgeAgent, *, reason: str, message: str) -> None:
        await events.post(
            self._api,
            about=events.agent_ref(agent),
            type_="Warning",
            reason=reason,
            message=message,
            now=self._clock(),
        )
