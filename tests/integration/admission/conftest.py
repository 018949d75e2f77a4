"""The residency webhook served by a real kopf process, called by the real API server.

Fixtures: `crds` (Edgewave's CRDs installed), `module_namespace`, `served` (one webhook
process per test module; tests may kill it), `make_rollout` (a manifest
helper). `served` starts kopf with the admission handlers and a start-up module that calls
`configure_admission` (managed mode: kopf registers the ValidatingWebhookConfiguration
with a freshly generated CA), then waits until the API server actually calls it: a dry
run of a rollout that names a region a throwaway policy forbids must be refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgewave_api import crdgen
from edgewave_operator.admission import webhook
from edgewave_operator.devcluster import clusters

ROOT = Path(__file__).resolve().parents[3]
SHA = "271bf7a607d6af6d389cb4e0190934f272c887d9bc544063918cde8ad8bdcc2c"
READY_TIMEOUT = 60.0

STARTUP = '''"""Stand-in for the operator's entry point: admission only."""
import kopf
from edgewave_operator.admission import webhook
from edgewave_operator.kube import clients


@kopf.on.startup()
async def admission(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: object) -> None:
    api = await clients.connect(None)
    memo["api"] = api
    webhook.configure_admission(settings, memo=memo, api=api)
'''


def rollout(
    name: str,
    *,
    namespace: str,
    labels: dict[str, str] | None = None,
    waves: list[list[str]] | None = None,
    targets: list[str] | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """A ModelRollout manifest; waves name regions, the last wave takes the rest.

    The model is named after the rollout unless `model` says otherwise: a model name has
    one owner cluster-wide (admission refuses a second).
    """
    wave_list: list[dict[str, Any]] = [
        {"name": f"wave-{i}", "regions": regions} for i, regions in enumerate(waves or [])
    ]
    wave_list.append({"name": "rest"})
    return {
        "apiVersion": "edgewave.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "model": {
                "name": model or name,
                "version": "1.0.0",
                "uri": "https://models.example.com/classifier.onnx",
                "sha256": SHA,
            },
            "targets": {"regions": targets} if targets else {"selector": {}},
            "strategy": {"waves": wave_list},
        },
    }


def apply(
    kube: clusters.DevCluster, manifest: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    return kube.kubectl("apply", *args, "-f", "-", input=json.dumps(manifest), check=False)


@pytest.fixture(scope="session")
def crds(kube: clusters.DevCluster) -> clusters.DevCluster:
    """Edgewave's CRDs, installed and Established."""
    kube.kubectl("apply", "-f", str(ROOT / "crds"))
    names = [f"crd/{resource.crd.name}" for resource in crdgen.RESOURCES]
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    return kube


def wait_until(check: Callable[[], bool], *, what: str, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


class WebhookProcess:
    """One kopf process serving the residency webhooks (managed registration)."""

    def __init__(self, kube: clusters.DevCluster, workdir: Path) -> None:
        self.kube = kube
        self.log_path = workdir / "kopf.log"
        startup = workdir / "admission_startup.py"
        startup.write_text(STARTUP)
        env = kube.environment()
        env["PYTHONUNBUFFERED"] = "1"
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kopf",
                    "run",
                    "--standalone",
                    "--all-namespaces",
                    "--verbose",
                    "-m",
                    "edgewave_operator.admission.webhook",
                    str(startup),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=workdir,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_serving(self, namespace: str) -> None:
        """Until the API server calls this process for ModelRollouts (a refused dry run)."""
        token = secrets.token_hex(3)
        label = {"edgewave.test/probe": token}
        probe_policy = {
            "apiVersion": "edgewave.io/v1alpha1",
            "kind": "ResidencyPolicy",
            "metadata": {"name": f"probe-{token}"},
            "spec": {"selector": {"matchLabels": label}, "deniedRegions": ["probe-region"]},
        }
        probe = rollout(
            f"probe-{token}", namespace=namespace, labels=label, targets=["probe-region"]
        )

        def refused() -> bool:
            if self.popen.poll() is not None:
                raise AssertionError(f"kopf exited {self.popen.returncode}:\n{self.log()[-6000:]}")
            if apply(self.kube, probe_policy).returncode != 0:
                return False  # our policy webhook may not be registered yet
            result = apply(self.kube, probe, "--dry-run=server")
            return result.returncode != 0 and f"probe-{token}" in result.stderr

        try:
            wait_until(refused, what="the API server to call the residency webhook")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.log()[-6000:]}") from None
        finally:
            self.kube.kubectl("delete", "residencypolicy", f"probe-{token}", "--ignore-not-found")

    def stop(self) -> None:
        """SIGTERM: kopf removes its webhooks from the configuration on the way out."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def kill(self) -> None:
        """SIGKILL: a crash; nothing is cleaned up."""
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait()


def configuration(kube: clusters.DevCluster) -> dict[str, Any] | None:
    result = kube.kubectl(
        "get",
        "validatingwebhookconfiguration",
        webhook.CONFIGURATION_NAME,
        "-o",
        "json",
        check=False,
    )
    return json.loads(result.stdout) if result.returncode == 0 else None


def wait_webhooks_gone(kube: clusters.DevCluster, namespace: str) -> None:
    """Until a plain rollout is admitted again (no stale webhook left for other tests)."""
    token = secrets.token_hex(3)
    plain = rollout(f"plain-{token}", namespace=namespace, targets=["eu-west"])
    wait_until(
        lambda: apply(kube, plain, "--dry-run=server").returncode == 0,
        what="the API server to stop calling the residency webhook",
    )


@contextlib.contextmanager
def serving(
    kube: clusters.DevCluster, *, workdir: Path, namespace: str
) -> Iterator[WebhookProcess]:
    """A webhook process the API server calls; afterwards, no webhook is left registered."""
    process = WebhookProcess(kube, workdir)
    try:
        process.wait_serving(namespace)
        yield process
    finally:
        process.stop()
        # kopf manages a (here empty) mutating configuration of the same name too.
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            kube.kubectl("delete", kind, webhook.CONFIGURATION_NAME, "--ignore-not-found")
        wait_webhooks_gone(kube, namespace)


@pytest.fixture(scope="module")
def module_namespace(crds: clusters.DevCluster) -> Iterator[str]:
    """A namespace shared by one test module's objects."""
    name = f"admission-{secrets.token_hex(3)}"
    crds.kubectl("create", "namespace", name)
    yield name
    crds.kubectl("delete", "modelrollouts", "--all", "-n", name, "--wait=false")
    crds.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def served(
    crds: clusters.DevCluster, module_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebhookProcess]:
    with serving(
        crds, workdir=tmp_path_factory.mktemp("webhook"), namespace=module_namespace
    ) as process:
        yield process


@pytest.fixture
def make_rollout() -> Callable[..., dict[str, Any]]:
    return rollout
