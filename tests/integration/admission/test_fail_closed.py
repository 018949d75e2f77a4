"""Fail closed: with the webhook down, the API server refuses ModelRollouts and says why."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any, Protocol

import pytest

from edgewave_operator.admission import webhook
from edgewave_operator.devcluster import clusters

pytestmark = pytest.mark.integration


class Served(Protocol):
    kube: clusters.DevCluster

    def kill(self) -> None: ...


def test_with_the_webhook_down_rollout_creation_is_refused_with_the_reason(
    served: Served, module_namespace: str, make_rollout: Callable[..., dict[str, Any]]
) -> None:
    kube = served.kube
    served.kill()  # a crash: kopf gets no chance to unregister its webhooks

    registered = json.loads(
        kube.kubectl(
            "get", "validatingwebhookconfiguration", webhook.CONFIGURATION_NAME, "-o", "json"
        ).stdout
    )
    [rollouts] = [
        w
        for w in registered["webhooks"]
        if w["name"] == f"{webhook.ROLLOUT_WEBHOOK}.{webhook.CONFIGURATION_NAME}"
    ]
    assert rollouts["failurePolicy"] == "Fail"

    # A rollout no policy could object to is refused all the same: no check, no rollout.
    name = f"unchecked-{secrets.token_hex(3)}"
    manifest = make_rollout(name, namespace=module_namespace, targets=["eu-west"])
    result = kube.kubectl("apply", "-f", "-", input=json.dumps(manifest), check=False)
    assert result.returncode != 0
    assert (
        f'failed calling webhook "{webhook.ROLLOUT_WEBHOOK}.{webhook.CONFIGURATION_NAME}"'
        in result.stderr
    )
    assert "connection refused" in result.stderr
    assert kube.kubectl("get", "mro", name, "-n", module_namespace, check=False).returncode != 0
