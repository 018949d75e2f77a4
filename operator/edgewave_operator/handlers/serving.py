"""What every replica serves, leader or standby: `/healthz` and the admission webhook.

The chart probes every pod and sends admission reviews to every ready pod, so these run
in a kopf operator of their own from start-up, while the reconciling handlers
(`registration.REGISTRY`) run in a second kopf operator that only the leader starts.
The admission validators register in kopf's default registry when
`edgewave_operator.admission.webhook` is imported, so that is the registry used here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes_asyncio import client

from edgewave_operator.settings import OperatorSettings

REGISTRY = kopf.get_default_registry()
"""Serving handlers, and the admission validators when the webhook module is imported."""
MEMO_KEY = "serving"


@dataclass
class Serving:
    """The serving operator's share of the process: settings, API client, flags."""

    settings: OperatorSettings
    api: client.ApiClient
    stopping: asyncio.Event
    """Set to stop the whole process (both kopf operators)."""
    leading: asyncio.Event
    """Set while this replica holds the leader Lease (reported by the health probe)."""


def memo_for(serving: Serving) -> kopf.Memo:
    return kopf.Memo({MEMO_KEY: serving})


def _serving(memo: Any) -> Serving:
    serving: Serving = memo[MEMO_KEY]
    return serving


@kopf.on.startup(registry=REGISTRY)
async def configure_serving(*, settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    settings.posting.enabled = False
    serving = _serving(memo)
    if serving.settings.admission_webhook:
        from edgewave_operator.admission import webhook

        webhook.configure_admission(settings, memo=memo, api=serving.api)


@kopf.on.cleanup(registry=REGISTRY)
async def stop_serving(*, memo: Any, **_: Any) -> None:
    """A signal that reached this kopf stops the whole process (the leader's kopf too)."""
    _serving(memo).stopping.set()


@kopf.on.probe(registry=REGISTRY, id="role")
async def role(*, memo: Any, **_: Any) -> str:
    return "leader" if _serving(memo).leading.is_set() else "standby"
