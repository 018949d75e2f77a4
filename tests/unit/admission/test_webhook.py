"""configure_admission's two modes, the wrong-path guard, and which updates are re-checked."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import kopf
import pytest
from cryptography import x509

from edgewave_api import pki
from edgewave_operator.admission import webhook


class _Api:
    """Stands in for the API client: configure_admission only stores it."""


def test_managed_mode_generates_a_certificate_the_api_server_can_verify() -> None:
    settings = kopf.OperatorSettings()
    memo = kopf.Memo()
    api: Any = _Api()
    server = webhook.configure_admission(settings, memo=memo, api=api)
    assert settings.admission.server is server
    assert settings.admission.managed == webhook.CONFIGURATION_NAME
    assert isinstance(memo[webhook.MEMO_KEY], webhook.AdmissionContext)
    assert server.host == "127.0.0.1"
    assert server.port is None  # a free port is picked when kopf starts serving
    assert server.certfile is not None and server.cafile is not None
    cert = x509.load_pem_x509_certificate(Path(server.certfile).read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    # The CA in the webhook's caBundle verifies the serving certificate.
    context = ssl.create_default_context(cafile=str(server.cafile))
    assert context.get_ca_certs()[0]["subject"] == ((("commonName", "edgewave-webhook-ca"),),)
    assert oct(Path(server.pkeyfile or "").stat().st_mode & 0o777) == "0o600"


def test_static_mode_serves_the_mounted_certificate_and_manages_nothing(tmp_path: Path) -> None:
    ca = pki.new_ca("chart-ca")
    serving = pki.issue(ca, common_name="edgewave-webhook", dns_names=("svc",), server=True)
    (tmp_path / "tls.crt").write_bytes(serving.cert_pem)
    (tmp_path / "tls.key").write_bytes(serving.key_pem)
    settings = kopf.OperatorSettings()
    config = webhook.AdmissionConfig(
        managed=False, listen_address="0.0.0.0", port=9443, cert_dir=tmp_path
    )
    api: Any = _Api()
    server = webhook.configure_admission(settings, memo=kopf.Memo(), api=api, config=config)
    assert settings.admission.managed is None
    assert (server.addr, server.port) == ("0.0.0.0", 9443)
    assert server.certfile == tmp_path / "tls.crt"
    assert server.cafile is None  # no ca.crt mounted: the chart's configuration carries it


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEWAVE_WEBHOOK_MANAGED", "false")
    monkeypatch.setenv("EDGEWAVE_WEBHOOK_PORT", "9443")
    monkeypatch.setenv("EDGEWAVE_WEBHOOK_CERT_DIR", "/etc/edgewave/webhook")
    config = webhook.AdmissionConfig()
    assert (config.managed, config.port) == (False, 9443)
    assert config.cert_dir == Path("/etc/edgewave/webhook")


def _review(resource: str) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "resource": {"group": "edgewave.io", "version": "v1alpha1", "resource": resource},
        },
    }


@pytest.mark.parametrize(
    ("resource", "path", "passed"),
    [
        ("modelrollouts", "modelrollouts", True),
        ("residencypolicies", "residencypolicies", True),
        ("modelrollouts", "", False),
        ("modelrollouts", "residencypolicies", False),
        ("residencypolicies", None, False),
        ("edgeagents", "anything", True),  # not ours to guard
    ],
)
def test_reviews_on_the_wrong_path_are_refused_not_silently_admitted(
    resource: str, path: str | None, passed: bool
) -> None:
    calls: list[str | None] = []

    async def fn(request: Any, *, webhook: str | None = None, **_: Any) -> Any:
        calls.append(webhook)
        return {"response": {"allowed": True}}

    guarded = webhook.guard(fn)

    async def review() -> Any:
        return await guarded(_review(resource), webhook=path)  # type: ignore[arg-type]

    response = asyncio.run(review())
    assert bool(calls) is passed
    if not passed:
        assert response["response"]["allowed"] is False
        assert response["response"]["uid"] == "u-1"
        assert f"path /{resource}" in response["response"]["status"]["message"]


SPEC = {"targets": {"regions": ["eu-west"]}}


@pytest.mark.parametrize(
    ("old", "new", "checked"),
    [
        (None, {"spec": SPEC}, True),
        ({"spec": SPEC}, {"spec": SPEC, "metadata": {"finalizers": ["x"]}}, False),
        ({"spec": SPEC}, {"spec": SPEC, "metadata": {"annotations": {"a": "b"}}}, False),
        ({"spec": SPEC}, {"spec": {"targets": {"regions": ["us-east"]}}}, True),
        ({"spec": SPEC}, {"spec": SPEC, "metadata": {"labels": {"data": "eu"}}}, True),
        (
            {"spec": SPEC},
            {"spec": {"x": 1}, "metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}},
            False,
        ),
    ],
)
def test_only_updates_that_touch_spec_or_labels_are_checked(
    old: dict[str, Any] | None, new: dict[str, Any], checked: bool
) -> None:
    assert webhook._rollout_residency_changed(old, new) is checked
