"""The admission webhook's serving certificate, made in the cluster instead of in a chart render.

A chart that generates certificates while rendering (`genCA` with `lookup`) produces new ones
on every `helm template`: Argo CD, which renders with `helm template`, would see the Secret and
both `caBundle`s change on every comparison and rotate the certificate on every sync. In the
chart's `job` mode a short Helm hook Job runs `edgewave webhook-certificate` instead, so the
chart renders the same bytes every time:

* `ensure_secret`: the `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`, `ca.crt`) is read, or
  created once from a fresh CA and a serving certificate for the webhook Service's DNS names
  (a second Job racing the first reads what the first wrote);
* `ca_bundle_patch` (pure) and `inject_ca_bundle`: every webhook of the
  ValidatingWebhookConfiguration that calls that Service gets the CA as its `caBundle`; a
  configuration that does not exist yet (the pre-install run) is left for the post-install run.

Nothing here rotates a certificate: the Secret, once made, is kept until someone deletes it
(then the next install or upgrade makes a new one and injects its CA).
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes_asyncio import client

from edgewave_api import pki
from edgewave_api.errors import PermanentError
from edgewave_operator.kube import failures, secrets

TLS_KEYS = ("tls.crt", "tls.key", "ca.crt")
VALIDITY = datetime.timedelta(days=3650)
_JSON_PATCH: dict[str, Any] = {"_content_type": "application/json-patch+json"}


def dns_names(*, service: str, namespace: str) -> tuple[str, ...]:
    """The names the API server may dial the webhook Service by."""
    return (
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    )


def new_material(*, service: str, namespace: str) -> dict[str, bytes]:
    """A fresh CA and a serving certificate it signed, as the Secret's data."""
    # A common name holds at most 64 characters; the names that matter are the SANs.
    ca = pki.new_ca("edgewave-webhook-ca", validity=VALIDITY)
    leaf = pki.issue(
        ca,
        common_name=service[:64],
        dns_names=dns_names(service=service, namespace=namespace),
        server=True,
        validity=VALIDITY,
    )
    return {"tls.crt": leaf.cert_pem, "tls.key": leaf.key_pem, "ca.crt": ca.cert_pem}


async def ensure_secret(
    api: client.ApiClient, *, namespace: str, name: str, service: str
) -> dict[str, bytes]:
    """The Secret's data, created once if absent; refuses a Secret missing a TLS key."""
    data = await secrets.read_or_create(
        api,
        namespace=namespace,
        name=name,
        make=lambda: new_material(service=service, namespace=namespace),
        secret_type="kubernetes.io/tls",
    )
    missing = [key for key in TLS_KEYS if not data.get(key)]
    if missing:
        raise PermanentError(
            f"Secret {namespace}/{name} exists without {', '.join(missing)}; delete it (a new "
            "one is made on the next run) or give it tls.crt, tls.key and ca.crt"
        )
    return data


def ca_bundle_patch(
    webhooks: Sequence[Mapping[str, Any]], *, service: str, namespace: str, ca_pem: bytes
) -> list[dict[str, Any]]:
    """JSON-patch operations setting `caBundle` on each webhook that calls the Service. Pure.

    Webhooks that call another Service or a URL are left alone; a webhook that already
    carries the bundle needs no operation, so a second run patches nothing.
    """
    bundle = base64.b64encode(ca_pem).decode()
    operations: list[dict[str, Any]] = []
    for index, hook in enumerate(webhooks):
        config = hook.get("clientConfig") or {}
        target = config.get("service") or {}
        if target.get("name") != service or target.get("namespace") != namespace:
            continue
        if config.get("caBundle") == bundle:
            continue
        operations.append(
            {"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": bundle}
        )
    return operations


async def inject_ca_bundle(
    api: client.ApiClient, *, configuration: str, service: str, namespace: str, ca_pem: bytes
) -> int | None:
    """Webhooks patched in the configuration (0: already right); None when it does not exist."""
    admission = client.AdmissionregistrationV1Api(api)
    try:
        found = await failures.call(
            admission.read_validating_webhook_configuration(configuration),
            doing=f"reading ValidatingWebhookConfiguration {configuration}",
        )
    except failures.NotFound:
        return None
    webhooks = api.sanitize_for_serialization(found).get("webhooks") or []
    operations = ca_bundle_patch(webhooks, service=service, namespace=namespace, ca_pem=ca_pem)
    if operations:
        # The test on resourceVersion makes a concurrent change fail the patch, not be lost.
        guard = {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": found.metadata.resource_version,
        }
        await failures.call(
            admission.patch_validating_webhook_configuration(
                configuration, [guard, *operations], **_JSON_PATCH
            ),
            doing=f"setting caBundle on ValidatingWebhookConfiguration {configuration}",
        )
    return len(operations)
