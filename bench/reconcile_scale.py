"""Reconcile at scale: one rollout across N real agents, N = 100 and N = 1,000.

Real agent code (`edgewave_agent.server.AgentServer`, mTLS gRPC, ONNX Runtime) with many
agents in this process, a real kube-apiserver + etcd (the dev control plane) and the real
operator as a subprocess. For each N: start N agents and their EdgeAgents, snapshot the
API server's own request counters (`apiserver_request_total` on /metrics), start the
operator, create one ModelRollout selecting all N (a 10% canary wave, then the rest,
maxUnavailable 25%), and time creation -> phase Succeeded. Writes are every mutating
request (POST/PUT/PATCH/DELETE/APPLY) the API server counted after the snapshot, minus the
one ModelRollout the benchmark created; the operator's peak RSS is its VmHWM.

Prints `reconcile_scale t1000/t100=<ratio> rss_mib=<operator peak RSS at the largest N>
writes_per_agent=<API writes per agent at the largest N>`, preceded by one detail line per N
(time, RSS, writes by resource). Goals: ratio <= 10, rss <= 512 MiB, writes <= 3.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from edgewave_agent import settings as agent_settings
from edgewave_agent import testing
from edgewave_agent.server import AgentServer
from edgewave_operator.devcluster import clusters

ROOT = Path(__file__).resolve().parent.parent
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY"})
T = TypeVar("T")


class Agents:
    """Many agents on one background event loop."""

    def __init__(self, pki: testing.Pki, root: Path) -> None:
        self.pki = pki
        self.root = root
        self.background = testing.BackgroundLoop()
        self.servers: list[AgentServer] = []

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 600) -> T:
        return self.background.call(coroutine, timeout)

    def start(self, count: int, *, prefix: str) -> list[tuple[str, int]]:
        """Start `count` agents; their (id, control port)."""
        configs = [
            agent_settings.parse(
                testing.agent_config(
                    pki_=self.pki,
                    data_dir=self.root / f"{prefix}-{i:04d}",
                    agent_id=f"{prefix}-{i:04d}",
                    region="eu-west",
                    zone="eu-west-a",
                    jurisdiction="EU",
                    listen={"control": "127.0.0.1:0", "serving": None},
                    port_file=None,
                ),
                source=f"agent {i}",
            )
            for i in range(count)
        ]
        servers = [AgentServer(config, gpus=[], inference_threads=1) for config in configs]

        async def start_all() -> None:
            for batch in range(0, len(servers), 50):
                await asyncio.gather(*(s.start() for s in servers[batch : batch + 50]))

        self.call(start_all())
        self.servers.extend(servers)
        return [(s.config.agent_id, s.control_port) for s in servers]

    def stop_all(self) -> None:
        async def stop() -> None:
            await asyncio.gather(*(s.stop(grace=0) for s in self.servers))

        self.call(stop())
        self.servers.clear()

    def close(self) -> None:
        self.background.close()


def writes(cluster: clusters.DevCluster) -> Counter[str]:
    """Mutating requests the API server has served, by resource[/subresource]."""
    status, body = cluster.request("GET", "/metrics")
    if status != 200:
        raise RuntimeError(f"GET /metrics answered {status}")
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(body.decode()):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total") or sample.labels.get("verb") not in WRITE_VERBS:
                continue
            resource = sample.labels.get("resource", "")
            sub = sample.labels.get("subresource", "")
            counts[f"{resource}/{sub}" if sub else resource] += int(sample.value)
    return counts


def apply_all(cluster: clusters.DevCluster, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 200):
        document = {"apiVersion": "v1", "kind": "List", "items": items[start : start + 200]}
        cluster.kubectl("apply", "-f", "-", input=json.dumps(document), timeout=300)


def secrets(namespace: str, pki: testing.Pki) -> list[dict[str, Any]]:
    def secret(name: str, *, kind: str, data: dict[str, bytes]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": kind,
            "metadata": {"name": name, "namespace": namespace},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }

    ca, key = pki.ca, pki.signing_key
    return [
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
    ]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_one(
    *,
    cluster: clusters.DevCluster,
    agents: Agents,
    count: int,
    model: tuple[str, str],
    workdir: Path,
    probe_interval: float,
) -> dict[str, Any]:
    run = f"scale-{count}"
    cluster.kubectl("create", "namespace", run)
    apply_all(cluster, secrets(run, agents.pki))
    started = agents.start(count, prefix=run)
    canary = max(1, count // 10)
    apply_all(
        cluster,
        [
            {
                "apiVersion": "edgewave.io/v1alpha1",
                "kind": "EdgeAgent",
                "metadata": {
                    "name": agent_id,
                    "labels": {"bench/run": run, "tier": "canary" if i < canary else "fleet"},
                },
                "spec": {
                    "endpoint": f"localhost:{port}",
                    "region": "eu-west",
                    "zone": "eu-west-a",
                    "jurisdiction": "EU",
                },
            }
            for i, (agent_id, port) in enumerate(started)
        ],
    )
    before = writes(cluster)
    env = {
        **cluster.environment(),
        "PYTHONUNBUFFERED": "1",
        "EDGEWAVE_KUBECONFIG": str(cluster.kubeconfig),
        "EDGEWAVE_NAMESPACE": run,
        "EDGEWAVE_WATCH_NAMESPACES": json.dumps([run]),
        "EDGEWAVE_IDENTITY": f"bench-{count}",
        "EDGEWAVE_CACHE_DIR": str(workdir / "cache"),
        "EDGEWAVE_MODEL_ROOT": str(workdir),  # the benchmark's file:// model
        "EDGEWAVE_GATEWAY_LISTEN": "",  # its agents are dialled directly
        "EDGEWAVE_PROBE_INTERVAL_SECONDS": str(probe_interval),
    }
    log_path = workdir / f"operator-{count}.log"
    with log_path.open("wb") as log:
        operator = subprocess.Popen(
            [sys.executable, "-m", "edgewave_operator.main"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    uri, sha = model
    rollout = {
        "apiVersion": "edgewave.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": "scale", "namespace": run},
        "spec": {
            "model": {"name": "scale", "version": "1.0.0", "uri": uri, "sha256": sha},
            "targets": {"selector": {"matchLabels": {"bench/run": run}}},
            "build": {"precision": "FP32", "backends": ["ONNXRuntime"]},
            "strategy": {
                "waves": [
                    {
                        "name": "canary",
                        "selector": {"matchLabels": {"tier": "canary"}},
                        "maxUnavailable": "25%",
                    },
                    {"name": "fleet", "maxUnavailable": "25%"},
                ],
                "healthGate": {"windowSeconds": 1, "minSamples": 0},
                "progressDeadlineSeconds": 1800,
            },
        },
    }
    try:
        t0 = time.monotonic()
        apply_all(cluster, [rollout])
        while True:
            if operator.poll() is not None:
                raise RuntimeError(f"operator exited {operator.returncode}; see {log_path}")
            result = cluster.kubectl("get", "mro", "scale", "-n", run, "-o", "json")
            status = json.loads(result.stdout).get("status") or {}
            if status.get("phase") == "Succeeded":
                break
            if status.get("phase") in ("RolledBack", "Failed"):
                raise RuntimeError(f"rollout {status.get('phase')}: {status.get('message')}")
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        after = writes(cluster)
        rss = peak_rss_mib(operator.pid)
    finally:
        operator.send_signal(signal.SIGTERM)
        try:
            operator.wait(timeout=60)
        except subprocess.TimeoutExpired:
            operator.kill()
    delta = after - before
    delta["modelrollouts"] -= 1  # the benchmark's own create
    total = sum(delta.values())
    # Leave the cluster clean for the next N: no finalizer to run, no agents to probe.
    cluster.kubectl(
        "patch", "mro", "scale", "-n", run, "--type=merge", "-p",
        '{"metadata":{"finalizers":null}}', check=False,
    )  # fmt: skip
    cluster.kubectl("delete", "edgeagents", "-l", f"bench/run={run}", "--wait=false", timeout=300)
    agents.stop_all()
    return {
        "count": count,
        "seconds": elapsed,
        "rss_mib": rss,
        "writes": total,
        "writes_per_agent": total / count,
        "by_resource": dict(sorted((k, v) for k, v in delta.items() if v)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=1000)
    parser.add_argument("--probe-interval", type=float, default=10.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="edgewave-scale-") as tmp:
        workdir = Path(tmp)
        pki = testing.Pki.create(workdir / "pki")
        model_path, digest = testing.write_artifact(workdir, testing.linear_model(scale=1.0))
        with clusters.DevCluster.start(workdir=workdir / "kube") as cluster:
            cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
            cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
            agents = Agents(pki, workdir / "agents")
            results = []
            try:
                for count in (args.small, args.large):
                    result = run_one(
                        cluster=cluster,
                        agents=agents,
                        count=count,
                        model=(model_path.as_uri(), digest),
                        workdir=workdir,
                        probe_interval=args.probe_interval,
                    )
                    results.append(result)
                    print(
                        f"reconcile_scale n={count} seconds={result['seconds']:.1f} "
                        f"rss_mib={result['rss_mib']:.0f} writes={result['writes']} "
                        f"writes_per_agent={result['writes_per_agent']:.2f} "
                        f"by_resource={json.dumps(result['by_resource'], separators=(',', ':'))}",
                        flush=True,
                    )
            finally:
                agents.close()
    small, large = results
    print(
        f"reconcile_scale t{args.large}/t{args.small}={large['seconds'] / small['seconds']:.2f} "
        f"rss_mib={large['rss_mib']:.0f} writes_per_agent={large['writes_per_agent']:.2f}"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
