"""The dev control plane is a real Kubernetes API server.

Everything goes through the pinned kubectl or kubernetes_asyncio, as the operator does:
namespaces, ConfigMaps, a CRD with a structural schema and its custom resources, schema
validation with the field named, conditions on the status subresource with `kubectl
wait`, watches, service-account tokens and a validating admission webhook called at a
local `url`.
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config, watch

from edgewave_api import pki
from edgewave_operator.devcluster import clusters

pytestmark = pytest.mark.integration

GROUP = "devcluster.test.edgewave.dev"


def widget(name: str, *, spec: dict[str, Any]) -> str:
    return json.dumps(
        {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}
    )


def test_readyz_and_version(kube: clusters.DevCluster) -> None:
    assert kube.kubectl("get", "--raw", "/readyz").stdout == "ok"
    assert kube.version() == "Kubernetes v1.34.4"
    assert kube.server.startswith("https://127.0.0.1:")


def test_namespace_and_configmap_through_apply(kube: clusters.DevCluster, namespace: str) -> None:
    assert kube.kubectl("get", "namespace", namespace, "-o", "name").stdout.strip() == (
        f"namespace/{namespace}"
    )
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": {"colour": "blue"},
    }
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    got = kube.kubectl("get", "configmap", "settings", "-n", namespace, "-o", "json")
    assert json.loads(got.stdout)["data"] == {"colour": "blue"}


def test_custom_resource_through_apply(
    kube: clusters.DevCluster, namespace: str, widgets: str
) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=widget("w1", spec={"replicas": 3}))
    got = json.loads(kube.kubectl("get", widgets, "w1", "-n", namespace, "-o", "json").stdout)
    assert got["spec"] == {"replicas": 3}
    assert got["metadata"]["generation"] == 1


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"replicas": "three"}, ("spec.replicas", "integer")),
        ({"replicas": 0}, ("spec.replicas", "greater than or equal to 1")),
        ({"replicas": 2, "colour": "blue"}, ("spec.colour", "supported values")),
        ({}, ("spec.replicas", "Required value")),
        ({"replicas": 2, "size": "XL"}, ("spec.size", "unknown field")),
    ],
)
def test_schema_violation_is_rejected_with_the_field_named(
    kube: clusters.DevCluster,
    namespace: str,
    widgets: str,
    spec: dict[str, Any],
    expected: tuple[str, str],
) -> None:
    field, complaint = expected
    result = kube.kubectl(
        "apply", "-n", namespace, "-f", "-", input=widget("bad", spec=spec), check=False
    )
    assert result.returncode != 0
    assert field in result.stderr
    assert complaint.lower() in result.stderr.lower()
    missing = kube.kubectl("get", widgets, "bad", "-n", namespace, check=False)
    assert "NotFound" in missing.stderr


def test_kubectl_wait_on_a_condition_set_through_the_status_subresource(
    kube: clusters.DevCluster, namespace: str, widgets: str
) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=widget("w2", spec={"replicas": 1}))
    not_yet = kube.kubectl(
        "wait",
        "--for=condition=Ready",
        "--timeout=1s",
        f"{widgets}/w2",
        "-n",
        namespace,
        check=False,
    )
    assert not_yet.returncode != 0
    assert "timed out" in not_yet.stderr
    ready = {
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Tested",
                    "message": "set by the test",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ]
        }
    }
    with futures.ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(
            kube.kubectl,
            "wait",
            "--for=condition=Ready",
            "--timeout=60s",
            f"{widgets}/w2",
            "-n",
            namespace,
        )
        kube.kubectl(
            "patch",
            widgets,
            "w2",
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(ready),
        )
        assert "condition met" in waiting.result(timeout=90).stdout
    # The status subresource moved status without touching the spec's generation.
    got = json.loads(kube.kubectl("get", widgets, "w2", "-n", namespace, "-o", "json").stdout)
    assert got["metadata"]["generation"] == 1
    assert got["status"]["conditions"][0]["type"] == "Ready"


def test_watch_events_arrive_for_changes(kube: clusters.DevCluster, namespace: str) -> None:
    kube.kubectl("create", "configmap", "watched", "-n", namespace, "--from-literal=step=0")
    created = json.loads(
        kube.kubectl("get", "configmap", "watched", "-n", namespace, "-o", "json").stdout
    )
    kube.kubectl("patch", "configmap", "watched", "-n", namespace, "-p", '{"data":{"step":"1"}}')

    async def watch_steps() -> list[tuple[str, str]]:
        configuration = client.Configuration()
        await config.load_kube_config(
            config_file=str(kube.kubeconfig), client_configuration=configuration
        )
        seen: list[tuple[str, str]] = []
        async with client.ApiClient(configuration) as api:
            core = client.CoreV1Api(api)
            watcher = watch.Watch()
            async with watcher.stream(
                core.list_namespaced_config_map,
                namespace,
                field_selector="metadata.name=watched",
                resource_version=created["metadata"]["resourceVersion"],
                timeout_seconds=30,
            ) as events:
                async for event in events:
                    seen.append((event["type"], event["object"].data["step"]))
                    if len(seen) == 1:
                        # The first change was replayed from the resource version; this one
                        # happens while the watch is open and must arrive live.
                        await asyncio.to_thread(
                            kube.kubectl,
                            "patch",
                            "configmap",
                            "watched",
                            "-n",
                            namespace,
                            "-p",
                            '{"data":{"step":"2"}}',
                        )
                    else:
                        watcher.stop()
        return seen

    assert asyncio.run(watch_steps()) == [("MODIFIED", "1"), ("MODIFIED", "2")]


def test_service_accounts_get_tokens_and_pods_are_admitted(
    kube: clusters.DevCluster, namespace: str
) -> None:
    token = kube.kubectl("create", "token", "default", "-n", namespace).stdout.strip()
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == f"system:serviceaccount:{namespace}:default"
    assert claims["iss"] == "https://kubernetes.default.svc.cluster.local"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "registry.invalid/none:1"}]},
    }
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))
    got = json.loads(kube.kubectl("get", "pod", "p", "-n", namespace, "-o", "json").stdout)
    assert got["spec"]["serviceAccountName"] == "default"
    assert got["status"]["phase"] == "Pending"  # no scheduler or kubelet: it never runs


def test_rbac_denies_a_service_account_what_it_was_not_granted(
    kube: clusters.DevCluster, namespace: str
) -> None:
    as_account = f"--as=system:serviceaccount:{namespace}:default"
    denied = kube.kubectl(
        "auth", "can-i", "list", "configmaps", "-n", namespace, as_account, check=False
    )
    assert denied.stdout.strip() == "no"
    kube.kubectl(
        "create", "role", "reader", "-n", namespace, "--verb=list", "--resource=configmaps"
    )
    kube.kubectl(
        "create",
        "rolebinding",
        "reader",
        "-n",
        namespace,
        "--role=reader",
        f"--serviceaccount={namespace}:default",
    )
    allowed = kube.kubectl("auth", "can-i", "list", "configmaps", "-n", namespace, as_account)
    assert allowed.stdout.strip() == "yes"


# --- admission webhook at a local url ------------------------------------------------------


class _DenyLabelled(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        labels = review["request"]["object"]["metadata"].get("labels") or {}
        allowed = labels.get("deny") != "yes"
        response = {"uid": review["request"]["uid"], "allowed": allowed}
        if not allowed:
            response["status"] = {"code": 403, "message": "labelled deny=yes by the test"}
        body = json.dumps(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_url(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """A local HTTPS admission webhook; yields its url and CA bundle."""
    ca = pki.new_ca("webhook-test-ca")
    serving = pki.issue(ca, common_name="webhook", ip_addresses=("127.0.0.1",), server=True)
    (tmp_path / "tls.crt").write_bytes(serving.cert_pem)
    (tmp_path / "tls.key").write_bytes(serving.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DenyLabelled)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/validate", ca.cert_pem
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_validating_webhook_at_a_local_url_is_called(
    kube: clusters.DevCluster, namespace: str, webhook_url: tuple[str, bytes]
) -> None:
    url, ca_pem = webhook_url
    configuration = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": namespace},
        "webhooks": [
            {
                "name": "deny.devcluster.test.edgewave.dev",
                "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_pem).decode()},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["configmaps"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
            }
        ],
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(configuration))
    try:
        # The API server picks up new webhook configurations within a moment.
        deadline = time.monotonic() + 30
        while True:
            attempt = _create_labelled(kube, namespace)
            if attempt.returncode != 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert attempt.returncode != 0
        assert "labelled deny=yes by the test" in attempt.stderr
        kube.kubectl("create", "configmap", "allowed", "-n", namespace)
    finally:
        kube.kubectl("delete", "validatingwebhookconfiguration", namespace)


def _create_labelled(kube: clusters.DevCluster, namespace: str) -> subprocess.CompletedProcess[str]:
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "denied", "labels": {"deny": "yes"}},
    }
    return kube.kubectl(
        "create",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(manifest),
        check=False,
    )
