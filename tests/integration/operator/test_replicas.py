"""Two operator replicas: both serve /healthz and admission, only the leader reconciles."""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Fleet = Any
Operators = Any
Until = Any


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
            return bool(reply.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _review(port: int, body: dict[str, Any]) -> dict[str, Any]:
    """POST an AdmissionReview as the API server would (the webhook's TLS is not checked)."""
    uid = str(uuid.uuid4())
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "edgewave.io", "version": "v1alpha1", "kind": "ModelRollout"},
            "resource": {
                "group": "edgewave.io", "version": "v1alpha1", "resource": "modelrollouts"
            },
            "name": body["metadata"]["name"],
            "namespace": body["metadata"]["namespace"],
            "operation": "CREATE",
            "userInfo": {"username": "test"},
            "object": body,
            "oldObject": None,
            "dryRun": True,
        },
    }  # fmt: skip
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(
        f"https://127.0.0.1:{port}/modelrollouts",
        data=json.dumps(review).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30, context=context) as reply:
        answer: dict[str, Any] = json.loads(reply.read())
    assert answer["response"]["uid"] == uid
    response: dict[str, Any] = answer["response"]
    return response


def _holder(fleet: Fleet) -> str | None:
    result = fleet.kube.kubectl(
        "get", "lease", "edgewave-operator", "-n", fleet.namespace, "-o", "json", check=False
    )
    if result.returncode != 0:
        return None
    holder: str | None = json.loads(result.stdout)["spec"].get("holderIdentity")
    return holder


def _probed(fleet: Fleet, agent: str) -> bool:
    status = fleet.get("edgeagent", fleet.name(agent), namespaced=False).get("status") or {}
    return bool(status)


def test_standby_serves_health_and_admission_and_only_the_leader_reconciles(
    *, fleet: Fleet, operators: Operators, until: Until
) -> None:
    health = {"op-a": _free_port(), "op-b": _free_port()}
    hooks = {"op-a": _free_port(), "op-b": _free_port()}

    def start(identity: str) -> Any:
        return operators.start(
            identity,
            health_port=str(health[identity]),
            admission_webhook="true",
            webhook_managed="false",
            webhook_port=str(hooks[identity]),
        )

    leader = start("op-a")
    until(lambda: _holder(fleet) == "op-a", what="op-a to take the Lease")
    standby = start("op-b")
    until(lambda: _healthy(health["op-a"]), what="the leader's /healthz")
    until(lambda: _healthy(health["op-b"]), what="the standby's /healthz")

    # The standby's validator runs: a ModelRollout without a spec is refused, not admitted.
    broken = {
        "apiVersion": "edgewave.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": "broken", "namespace": fleet.namespace},
    }
    response = _review(hooks["op-b"], broken)
    assert response["allowed"] is False, response
    assert response["status"]["message"], response

    # Only the leader acts: it probes the agents; the standby never starts its handlers.
    until(lambda: _probed(fleet, "ew-0"), what="the leader's inventory to write agent status")
    assert "operator op-a acting" in leader.log()
    assert "acting" not in standby.log()
    assert standby.alive()

    # The leader stops cleanly: the standby takes over and still answers its probes.
    leader.stop()
    until(lambda: "operator op-b acting" in standby.log(), what="op-b to take over")
    assert _holder(fleet) == "op-b"
    assert _healthy(health["op-b"])
