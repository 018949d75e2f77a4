"""A real API server, real operator processes and six real agents, for the operator's tests.

- `host` (module): six agents served in-process (`edgewave_agent.server.AgentServer`,
  real gRPC with mTLS, ONNX Runtime on this CPU) on a background event loop, two per
  region in eu-west, eu-central and us-east. Each agent's store is wrapped by a spy that
  records, agent-side, when each push of each digest started and completed.
  `ec-1` fails its activation probe for version `PROBE_FAILS`.
- `fleet` (function): EdgeAgents for those agents, named and labelled for one test.
- `operators` (function): starts `python -m edgewave_operator.main` processes for the
  test's namespace (its Secrets and leader Lease live there); stops them afterwards,
  after the test's rollouts are deleted (so the finalizer ran and the agents are clean).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from edgewave_agent import settings as agent_settings
from edgewave_agent import testing
from edgewave_agent.backends import GpuInfo
from edgewave_agent.server import AgentServer
from edgewave_api import crdgen, kubeyaml
from edgewave_operator.devcluster import clusters
from edgewave_operator.kube import permissions

ROOT = Path(__file__).resolve().parents[3]
T = TypeVar("T")
RUN_LABEL = "edgewave.test/run"
PROBE_FAILS = "2.0.0-bad"
AGENTS = (
    ("ew-0", "eu-west", "EU"),
    ("ew-1", "eu-west", "EU"),
    ("ec-0", "eu-central", "EU"),
    ("ec-1", "eu-central", "EU"),
    ("ue-0", "us-east", "US"),
    ("ue-1", "us-east", "US"),
)


@dataclasses.dataclass
class PushRecord:
    agent: str
    digest: str
    started: float
    finished: float | None = None


class PushSpy:
    """Agent-side record of pushes: every `Store.begin` and every completed upload."""

    def __init__(self) -> None:
        self.records: list[PushRecord] = []
        self._lock = threading.Lock()

    def wrap(self, agent: str, store: Any) -> None:
        begin = store.begin

        def spied_begin(digest: str, **kwargs: Any) -> Any:
            upload = begin(digest, **kwargs)
            record = PushRecord(agent=agent, digest=digest, started=time.time())
            with self._lock:
                self.records.append(record)
            finish = upload.finish

            def spied_finish(*args: Any, **kw: Any) -> Any:
                result = finish(*args, **kw)
                record.finished = time.time()
                return result

            upload.finish = spied_finish
            return upload

        store.begin = spied_begin

    def completed(self, digest: str) -> list[PushRecord]:
        with self._lock:
            return [r for r in self.records if r.digest == digest and r.finished is not None]

    def count(self, digest: str, agent: str) -> int:
        return sum(1 for r in self.completed(digest) if r.agent == agent)


@dataclasses.dataclass
class Agent:
    agent_id: str
    region: str
    jurisdiction: str
    server: AgentServer

    @property
    def endpoint(self) -> str:
        return f"localhost:{self.server.control_port}"

    def active(self, model: str) -> str | None:
        core = self.server.core
        assert core is not None
        for view in core.serving.views():
            if view.model == model:
                return view.active.version if view.active else None
        return None

    def versions(self, model: str) -> list[str]:
        core = self.server.core
        assert core is not None
        for view in core.serving.views():
            if view.model == model:
                return [v.ref.version for v in view.versions]
        return []


class AgentHost:
    """Agents on one background event loop (a thread), like many agents per process."""

    def __init__(self, pki: testing.Pki, root: Path) -> None:
        self.pki = pki
        self.root = root
        self.background = testing.BackgroundLoop()
        self.spy = PushSpy()
        self.agents: dict[str, Agent] = {}

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return self.background.call(coroutine, timeout)

    def start(
        self,
        agent_id: str,
        *,
        region: str,
        jurisdiction: str,
        gpus: Sequence[GpuInfo] = (),
        **extra: Any,
    ) -> Agent:
        """Serve one more agent; `gpus` is the hardware it reports (none: this CPU)."""
        raw = testing.agent_config(
            pki_=self.pki,
            data_dir=self.root / agent_id,
            agent_id=agent_id,
            region=region,
            zone=f"{region}-a",
            jurisdiction=jurisdiction,
            health_window_seconds=5.0,
            **extra,
        )
        config = agent_settings.parse(raw, source=agent_id)
        server = AgentServer(config, gpus=list(gpus), inference_threads=1)
        self.call(server.start())
        assert server.core is not None
        self.spy.wrap(agent_id, server.core.store)
        agent = Agent(agent_id=agent_id, region=region, jurisdiction=jurisdiction, server=server)
        self.agents[agent_id] = agent
        return agent

    def close(self) -> None:
        for agent in self.agents.values():
            self.call(agent.server.stop(grace=0))
        self.background.close()


@pytest.fixture(scope="session")
def crds(kube: clusters.DevCluster) -> clusters.DevCluster:
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    names = [f"crd/{resource.crd.name}" for resource in crdgen.RESOURCES]
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    return kube


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> testing.Pki:
    return testing.Pki.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def engine_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("edgewave-cache")


@pytest.fixture(scope="module")
def host(pki: testing.Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentHost]:
    agents = AgentHost(pki, tmp_path_factory.mktemp("agents"))
    try:
        for agent_id, region, jurisdiction in AGENTS:
            extra: dict[str, Any] = {}
            if agent_id == "ec-1":
                extra["fault_injection"] = {"fail_probe_for_versions": [PROBE_FAILS]}
            agents.start(agent_id, region=region, jurisdiction=jurisdiction, **extra)
        yield agents
    finally:
        agents.close()


@dataclasses.dataclass
class Fleet:
    kube: clusters.DevCluster
    namespace: str
    host: AgentHost

    def name(self, agent_id: str) -> str:
        return f"{self.namespace}-{agent_id}"

    def manifest(self, agent: Agent, *, region: str | None = None) -> dict[str, Any]:
        return {
            "apiVersion": "edgewave.io/v1alpha1",
            "kind": "EdgeAgent",
            "metadata": {
                "name": self.name(agent.agent_id),
                "labels": {RUN_LABEL: self.namespace, "app": "cams"},
            },
            "spec": {
                "endpoint": agent.endpoint,
                "region": region or agent.region,
                "zone": f"{agent.region}-a",
                "jurisdiction": agent.jurisdiction,
            },
        }

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kube.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def get(self, kind: str, name: str, *, namespaced: bool = True) -> dict[str, Any]:
        args = ["get", kind, name, "-o", "json"]
        if namespaced:
            args += ["-n", self.namespace]
        result: dict[str, Any] = json.loads(self.kube.kubectl(*args).stdout)
        return result

    def events(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(
            self.kube.kubectl("get", "events", "-n", self.namespace, "-o", "json").stdout
        )["items"]
        return items


@pytest.fixture
def fleet(*, crds: clusters.DevCluster, namespace: str, host: AgentHost) -> Iterator[Fleet]:
    made = Fleet(kube=crds, namespace=namespace, host=host)
    for agent in host.agents.values():
        made.apply(made.manifest(agent))
    yield made
    crds.kubectl("delete", "edgeagents", "-l", f"{RUN_LABEL}={namespace}", "--wait=false")


class OperatorProcess:
    def __init__(self, *, kube: clusters.DevCluster, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "edgewave_operator.main"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        if self.alive():
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclasses.dataclass
class Operators:
    kube: clusters.DevCluster
    namespace: str
    pki: testing.Pki
    cache: Path
    workdir: Path
    started: list[OperatorProcess] = dataclasses.field(default_factory=list)

    def secrets(self) -> None:
        def secret(name: str, *, kind: str, data: dict[str, bytes]) -> dict[str, Any]:
            return {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": kind,
                "metadata": {"name": name, "namespace": self.namespace},
                "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
            }

        ca = self.pki.ca
        key = self.pki.signing_key
        for manifest in (
            secret(
                "edgewave-ca",
                kind="kubernetes.io/tls",
                data={"tls.crt": ca.cert_pem, "tls.key": ca.key_pem, "ca.crt": ca.cert_pem},
            ),
            secret(
                "edgewave-signing-key",
                kind="Opaque",
                data={"ed25519.key": key.private_pem, "ed25519.pub": key.public_pem},
            ),
        ):
            self.kube.kubectl("apply", "-f", "-", input=kubeyaml.dump(manifest))

    def least_privilege_kubeconfig(self) -> Path:
        """A kubeconfig for a ServiceAccount bound to exactly `kube.permissions`' rules."""
        ns = self.namespace
        name = f"{ns}-operator"
        subject = {"kind": "ServiceAccount", "name": "edgewave-operator", "namespace": ns}
        manifests: list[dict[str, Any]] = [
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": "edgewave-operator", "namespace": ns}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": name}, "rules": list(permissions.CLUSTER_RULES)},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": name}, "subjects": [subject],
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": name}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": "edgewave-operator", "namespace": ns},
             "rules": list(permissions.NAMESPACE_RULES)},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": "edgewave-operator", "namespace": ns}, "subjects": [subject],
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                         "name": "edgewave-operator"}},
        ]  # fmt: skip
        self.kube.kubectl(
            "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": manifests})
        )  # fmt: skip
        token = self.kube.kubectl(
            "create", "token", "edgewave-operator", "-n", ns, "--duration=1h"
        ).stdout.strip()
        admin = yaml.safe_load(self.kube.kubeconfig.read_text())
        cluster = admin["clusters"][0]
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [
                {"name": "operator", "context": {"cluster": cluster["name"], "user": "operator"}}
            ],
            "current-context": "operator",
        }
        path = self.workdir / "operator.kubeconfig"
        path.write_text(kubeyaml.dump(config))
        return path

    def start(
        self, identity: str = "op-0", *, kubeconfig: Path | None = None, **settings: str
    ) -> OperatorProcess:
        if not self.started:
            self.secrets()
        config = kubeconfig or self.kube.kubeconfig
        env = {
            **self.kube.environment(),
            "KUBECONFIG": str(config),
            "PYTHONUNBUFFERED": "1",
            "EDGEWAVE_KUBECONFIG": str(config),
            "EDGEWAVE_NAMESPACE": self.namespace,
            "EDGEWAVE_WATCH_NAMESPACES": json.dumps([self.namespace]),
            "EDGEWAVE_IDENTITY": identity,
            "EDGEWAVE_CACHE_DIR": str(self.cache),
            # Session temp root: holds the `model_files` directory (file:// model URIs).
            "EDGEWAVE_MODEL_ROOT": str(self.cache.parent),
            "EDGEWAVE_PROBE_INTERVAL_SECONDS": "0.5",
            "EDGEWAVE_PROBE_MAX_BACKOFF_SECONDS": "2",
            "EDGEWAVE_LEASE_DURATION_SECONDS": "3",
            "EDGEWAVE_LEASE_RENEW_SECONDS": "0.5",
            "EDGEWAVE_RECONCILE_PERIOD_SECONDS": "2",
            # The embedded gateway on a free port (tests run side by side on one machine).
            "EDGEWAVE_GATEWAY_LISTEN": "127.0.0.1:0",
            **{f"EDGEWAVE_{k.upper()}": v for k, v in settings.items()},
        }
        process = OperatorProcess(
            kube=self.kube, env=env, log_path=self.workdir / f"operator-{identity}.log"
        )
        self.started.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()}" for p in self.started)


@pytest.fixture
def operators(
    *,
    crds: clusters.DevCluster,
    namespace: str,
    pki: testing.Pki,
    engine_cache: Path,
    tmp_path: Path,
) -> Iterator[Operators]:
    made = Operators(kube=crds, namespace=namespace, pki=pki, cache=engine_cache, workdir=tmp_path)
    yield made
    # Delete this test's rollouts while an operator still runs their finalizer.
    if not any(p.alive() for p in made.started):
        made.start("op-cleanup")
    crds.kubectl("delete", "modelrollouts", "--all", "-n", namespace, "--timeout=60s", check=False)
    for process in made.started:
        process.stop()


def wait_until(
    check: Callable[[], bool], *, what: str, timeout: float = 90.0, logs: Callable[[], str]
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs()}")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> Callable[[float], tuple[str, str]]:
    """A small ONNX model per scale: (file:// uri, sha256)."""
    directory = tmp_path_factory.mktemp("models")

    def make(scale: float) -> tuple[str, str]:
        path, digest = testing.write_artifact(directory, testing.linear_model(scale=scale))
        return path.as_uri(), digest

    return make


@pytest.fixture
def until(operators: Operators) -> Callable[..., None]:
    """`until(check, what=...)`: wait for `check()`, failing with the operators' logs."""

    def wait(check: Callable[[], bool], *, what: str, timeout: float = 90.0) -> None:
        wait_until(check, what=what, timeout=timeout, logs=operators.logs)

    return wait


class Watcher:
    """`kubectl get -w -o json` of one object: every version the API server stored."""

    def __init__(self, kube: clusters.DevCluster, *args: str, log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as out:
            self.popen = subprocess.Popen(
                [str(kube.bin_dir / "kubectl"), f"--kubeconfig={kube.kubeconfig}", "get",
                 *args, "-w", "-o", "json"],
                stdout=out, stderr=subprocess.DEVNULL, env=kube.environment(),
            )  # fmt: skip

    def seen(self) -> list[dict[str, Any]]:
        text = self.log_path.read_text(errors="replace")
        decoder = json.JSONDecoder()
        found: list[dict[str, Any]] = []
        position = 0
        while True:
            while position < len(text) and text[position].isspace():
                position += 1
            if position >= len(text):
                return found
            try:
                item, position = decoder.raw_decode(text, position)
            except json.JSONDecodeError:
                return found  # a version still being written
            found.append(item)

    def stop(self) -> None:
        self.popen.terminate()
        self.popen.wait(timeout=10)


@pytest.fixture
def watch(crds: clusters.DevCluster, tmp_path: Path) -> Iterator[Callable[..., Watcher]]:
    started: list[Watcher] = []

    def start(*args: str) -> Watcher:
        watcher = Watcher(crds, *args, log_path=tmp_path / f"watch-{len(started)}.json")
        started.append(watcher)
        return watcher

    yield start
    for watcher in started:
        watcher.stop()


@pytest.fixture
def make_rollout() -> Callable[..., dict[str, Any]]:
    return rollout_manifest


@pytest.fixture
def probe_fails() -> str:
    """The version agent `ec-1` fails to activate (its health probe fails)."""
    return PROBE_FAILS


def rollout_manifest(
    name: str,
    *,
    namespace: str,
    model: str,
    version: str,
    uri: str,
    sha256: str,
    waves: list[dict[str, Any]] | None = None,
    residency: dict[str, Any] | None = None,
    **strategy: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"name": model, "version": version, "uri": uri, "sha256": sha256},
        "targets": {"selector": {"matchLabels": {RUN_LABEL: namespace}}},
        "build": {"precision": "FP32", "backends": ["ONNXRuntime"]},
        "strategy": {
            "waves": waves
            or [
                {"name": "canary", "regions": ["eu-west"], "maxUnavailable": 1},
                {"name": "eu", "regions": ["eu-central"], "maxUnavailable": 1},
                {"name": "us", "regions": ["us-east"], "maxUnavailable": 2},
            ],
            "healthGate": {"windowSeconds": 1, "minSamples": 0, "maxErrorRate": 0.5},
            "pauseBetweenWavesSeconds": 0,
            "progressDeadlineSeconds": 60,
            **strategy,
        },
    }
    if residency is not None:
        spec["residency"] = residency
    return {
        "apiVersion": "edgewave.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
