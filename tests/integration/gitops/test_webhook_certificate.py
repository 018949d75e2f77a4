"""The operator chart renders the same bytes every time, and its hook makes the certificate.

Argo CD renders charts with `helm template` and compares the result with the cluster; a chart
that generates certificates while rendering differs on every comparison (OutOfSync forever,
a new certificate on every sync). The default mode (`auto`: cert-manager where the cluster
serves it, else a hook Job) renders identically; the hook Job's command, with the chart's own
hook RBAC applied for real, creates the Secret once and injects its CA into the chart's
ValidatingWebhookConfiguration on the real API server.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgewave_api import kubeyaml
from edgewave_operator.devcluster import clusters

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "edgewave-operator"
EDGEWAVE = Path(sys.executable).with_name("edgewave")
HOOK_RBAC = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")


@pytest.fixture(scope="module")
def helm() -> Path:
    built = subprocess.run(
        [str(REPO / "tools" / "helm" / "build.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert built.returncode == 0, f"tools/helm/build.sh failed:\n{built.stderr}"
    return Path(built.stdout.strip())


def _template(helm: Path, *args: str, namespace: str = "edgewave-system") -> str:
    result = subprocess.run(
        [str(helm), "template", "ew", str(CHART), f"--namespace={namespace}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _objects(rendered: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def _hooked(obj: Mapping[str, Any]) -> bool:
    return "helm.sh/hook" in (obj["metadata"].get("annotations") or {})


def test_two_renders_with_default_values_are_byte_identical(helm: Path) -> None:
    assert _template(helm) == _template(helm)


def test_the_helm_mode_is_the_one_that_is_not(helm: Path) -> None:
    # The comparison above can fail: the render-time certificate differs on every render.
    assert _template(helm, "--set=webhook.tls.mode=helm") != _template(
        helm, "--set=webhook.tls.mode=helm"
    )


def test_auto_without_cert_manager_renders_the_hook_and_no_certificate_material(
    helm: Path,
) -> None:
    objects = _objects(_template(helm))
    assert not [o for o in objects if o["kind"] == "Secret"]
    (configuration,) = [o for o in objects if o["kind"] == "ValidatingWebhookConfiguration"]
    assert all("caBundle" not in w["clientConfig"] for w in configuration["webhooks"])
    (job,) = [o for o in objects if o["kind"] == "Job"]
    assert _hooked(job)
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert hooks == {"pre-install", "pre-upgrade", "post-install", "post-upgrade"}
    # The operator's own RBAC is untouched: the hook's objects are all hooks.
    assert all(_hooked(o) for o in objects if o["metadata"]["name"].endswith("-certificate"))


def test_hook_names_never_collide_with_the_operators_own(helm: Path) -> None:
    # A fullname at the 63-character limit: the hook's RBAC must not replace the operator's.
    release = "r" * 53  # helm's longest; with "-edgewave-operator" the fullname is cut at 63
    rendered = subprocess.run(
        [str(helm), "template", release, str(CHART), "--namespace=ns"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    objects = _objects(rendered.stdout)
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(names) == len(set(names)), sorted(names)
    hooks = {o["metadata"]["name"] for o in objects if _hooked(o)}
    others = {o["metadata"]["name"] for o in objects if not _hooked(o)}
    assert hooks and not hooks & others


def test_auto_with_cert_manager_uses_it(helm: Path) -> None:
    rendered = _template(helm, "--api-versions=cert-manager.io/v1")
    objects = _objects(rendered)
    assert [o["kind"] for o in objects if o["kind"] == "Job"] == []
    assert "Certificate" in {o["kind"] for o in objects}
    assert rendered == _template(helm, "--api-versions=cert-manager.io/v1")


@pytest.fixture
def hook(
    kube: clusters.DevCluster, namespace: str, helm: Path, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """The chart's hook RBAC applied for real, a kubeconfig of its ServiceAccount, the Job."""
    objects = _objects(_template(helm, namespace=namespace))
    rbac = [o for o in objects if o["kind"] in HOOK_RBAC and _hooked(o)]
    (job,) = [o for o in objects if o["kind"] == "Job"]
    (configuration,) = [o for o in objects if o["kind"] == "ValidatingWebhookConfiguration"]
    # The real configuration, made to intercept nothing while other tests share the cluster.
    for webhook in configuration["webhooks"]:
        webhook["rules"] = [
            {
                "apiGroups": ["example.invalid"],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["nothings"],
            }
        ]
        webhook["failurePolicy"] = "Ignore"
    kube.kubectl(
        "apply", "-f", "-", input=json.dumps({"kind": "List", "apiVersion": "v1", "items": rbac})
    )
    account = job["spec"]["template"]["spec"]["serviceAccountName"]
    token = kube.kubectl("create", "token", account, "-n", namespace, "--duration=10m").stdout
    admin = yaml.safe_load(kube.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    path = tmp_path / "hook.kubeconfig"
    path.write_text(
        kubeyaml.dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "hook", "user": {"token": token.strip()}}],
                "contexts": [
                    {"name": "hook", "context": {"cluster": cluster["name"], "user": "hook"}}
                ],
                "current-context": "hook",
            }
        )
    )
    yield {"job": job, "kubeconfig": path, "configuration": configuration}
    cluster_scoped = [o for o in rbac if o["kind"].startswith("Cluster")] + [configuration]
    kube.kubectl(
        "delete", "-f", "-", "--ignore-not-found", "--wait=false",
        input=json.dumps({"kind": "List", "apiVersion": "v1", "items": cluster_scoped}),
    )  # fmt: skip


def _arg(job: Mapping[str, Any], flag: str) -> str:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return next(a.split("=", 1)[1] for a in container["args"] if a.startswith(f"{flag}="))


def _run_job(job: Mapping[str, Any], kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    """The hook Job's container command, as the Job runs it (as its ServiceAccount)."""
    (container,) = job["spec"]["template"]["spec"]["containers"]
    argv: Sequence[str] = [*container["command"], *container["args"]]
    assert argv[0] == "edgewave"
    command = (
        [str(EDGEWAVE)]
        if EDGEWAVE.is_file()
        else [sys.executable, "-c", "from edgewave_operator.cli import main; main()"]
    )
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "EDGEWAVE_KUBECONFIG")}
    env["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run(
        [*command, *argv[1:]], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_the_hook_makes_the_secret_once_and_injects_its_ca(
    kube: clusters.DevCluster, namespace: str, hook: dict[str, Any]
) -> None:
    configuration = hook["configuration"]
    name = configuration["metadata"]["name"]

    # pre-install: the configuration does not exist yet; the Secret is made.
    first = _run_job(hook["job"], hook["kubeconfig"])
    assert first.returncode == 0, first.stderr
    assert "does not exist yet" in first.stdout
    secret_name = _arg(hook["job"], "--secret")
    secret = json.loads(
        kube.kubectl("get", "secret", secret_name, "-n", namespace, "-o", "json").stdout
    )
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}

    # post-install: the chart's configuration exists (without caBundle); both webhooks get it.
    kube.kubectl("apply", "-f", "-", input=json.dumps(configuration))
    second = _run_job(hook["job"], hook["kubeconfig"])
    assert second.returncode == 0, second.stderr
    assert "caBundle set on 2 webhook(s)" in second.stdout
    live = json.loads(
        kube.kubectl("get", "validatingwebhookconfiguration", name, "-o", "json").stdout
    )
    assert [w["clientConfig"]["caBundle"] for w in live["webhooks"]] == [
        secret["data"]["ca.crt"]
    ] * 2
    assert base64.b64decode(secret["data"]["ca.crt"]).startswith(b"-----BEGIN CERTIFICATE-----")

    # An upgrade: nothing rotates, nothing is patched; re-applying the chart keeps the bundle.
    third = _run_job(hook["job"], hook["kubeconfig"])
    assert "caBundle set on 0 webhook(s)" in third.stdout
    again = json.loads(
        kube.kubectl("get", "secret", secret_name, "-n", namespace, "-o", "json").stdout
    )
    assert again["data"] == secret["data"]
    kube.kubectl("apply", "-f", "-", input=json.dumps(configuration))
    live = json.loads(
        kube.kubectl("get", "validatingwebhookconfiguration", name, "-o", "json").stdout
    )
    assert all(w["clientConfig"].get("caBundle") for w in live["webhooks"])


def test_the_hook_account_may_touch_nothing_else(
    kube: clusters.DevCluster, namespace: str, hook: dict[str, Any]
) -> None:
    account = hook["job"]["spec"]["template"]["spec"]["serviceAccountName"]
    subject = f"system:serviceaccount:{namespace}:{account}"
    for verb, resource, name, allowed in (
        ("get", "secrets", _arg(hook["job"], "--secret"), True),
        ("get", "secrets", "ew-edgewave-operator-ca", False),
        ("list", "secrets", None, False),
        (
            "patch",
            "validatingwebhookconfigurations",
            hook["configuration"]["metadata"]["name"],
            True,
        ),
        ("patch", "validatingwebhookconfigurations", "someone-else", False),
    ):
        target = f"{resource}/{name}" if name else resource
        asked = kube.kubectl(
            "auth", "can-i", verb, target, "-n", namespace, f"--as={subject}", check=False
        )
        assert asked.stdout.strip() == ("yes" if allowed else "no"), (verb, target)
