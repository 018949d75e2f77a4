"""Starting the demo's world: control plane, CRDs, the operator's trust, agents, operator, traffic.

Each process is started through `devcluster.processes` (owned, or detached when kept) and
handed back to the caller, which stops them all in order at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from edgewave_api import conditions, edgeagent
from edgewave_operator import reading
from edgewave_operator.demo import constants, fleet, keeping, manifests, models, traffic
from edgewave_operator.devcluster import background, clusters, namespaces, processes

Step = Callable[[str], None]


def control_plane(
    *, keep: bool, state_dir: Path, cleanup: contextlib.ExitStack, step: Step
) -> tuple[clusters.DevCluster, Path]:
    """A control plane and a work directory: temporary ones, or those of `state_dir` if kept."""
    if not keep:
        workdir = Path(tempfile.mkdtemp(prefix="edgewave-demo-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        cluster = cleanup.enter_context(clusters.DevCluster.start())
        step(f"local control plane started at {cluster.server} ({cluster.version()})")
        return cluster, workdir
    if keeping.running(state_dir) is not None:
        raise constants.DemoFailed(
            f"a kept demo is already running from {state_dir}; stop it with "
            f"`edgewave demo --down{keeping.state_flag(state_dir)}`"
        )
    result = background.up(state_dir=state_dir)
    if result.started:
        cleanup.callback(background.down, state_dir=state_dir)
    cluster = clusters.DevCluster.attach(result.state)
    workdir = state_dir / keeping.DEMO_DIR
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    verb = "started" if result.started else "already running"
    step(f"local control plane {verb} at {cluster.server} ({cluster.version()})")
    return cluster, workdir


def install_crds(cluster: clusters.DevCluster, *, crds_dir: Path, step: Step) -> None:
    files = sorted(crds_dir.glob("*.yaml"))
    if not files:
        raise constants.DemoFailed(f"no CRDs in {crds_dir}: run `make generate`")
    args = [arg for path in files for arg in ("-f", str(path))]
    # Server-side apply: generated CRDs can outgrow the client-side annotation limit.
    applied = cluster.kubectl(
        "apply", "--server-side", "--field-manager=edgewave-demo", "-o", "name", *args
    )
    names = applied.stdout.split()
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)
    step(f"installed {len(names)} CRDs: {', '.join(n.split('/', 1)[1] for n in names)}")


def trust_material(cluster: clusters.DevCluster, *, directory: Path) -> fleet.Trust:
    """The operator's CA and activation key, created as the operator would (it reads them)."""
    from edgewave_operator import certs
    from edgewave_operator.kube import clients
    from edgewave_operator.settings import OperatorSettings

    cluster.kubectl("apply", "-f", "-", input=namespaces.manifest(constants.OPERATOR_NAMESPACE))
    settings = OperatorSettings(namespace=constants.OPERATOR_NAMESPACE)

    async def load() -> certs.TrustMaterial:
        api = await clients.connect(cluster.kubeconfig)
        async with api:
            return await certs.load(
                api,
                namespace=constants.OPERATOR_NAMESPACE,
                ca_secret=settings.ca_secret,
                signing_secret=settings.signing_secret,
            )

    material = asyncio.run(load())
    return fleet.Trust.write(
        ca=material.ca,
        activation_public_pem=material.signing_key.public_pem,
        directory=directory,
    )


def edge_agents(agents: Sequence[fleet.Agent]) -> str:
    return manifests.dump(
        *(
            manifests.edge_agent(
                name=agent.site.name,
                region=agent.site.region,
                zone=agent.site.zone,
                jurisdiction=agent.site.jurisdiction,
            )
            for agent in agents
        )
    )


def script(name: str, module_main: str) -> list[str]:
    script = Path(sys.executable).with_name(name)
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", f"from {module_main} import main; main()"]


def gateway_port_file(workdir: Path) -> Path:
    return workdir / "gateway-port.json"


def start_operator(
    cluster: clusters.DevCluster, *, workdir: Path, short: bool, detached: bool
) -> processes.Child:
    """`edgewave operator run`, probing agents every second, serving the residency webhook,
    with its embedded gateway on a free port of 127.0.0.1 (the agents dial it)."""
    env = cluster.environment()
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "EDGEWAVE_CACHE_DIR": str(workdir / "operator-cache"),
            "EDGEWAVE_MODEL_ROOT": str(workdir / "models"),  # the demo's file:// models
            "EDGEWAVE_ADMISSION_WEBHOOK": "true",
            "EDGEWAVE_PROBE_INTERVAL_SECONDS": "1",
            "EDGEWAVE_RECONCILE_PERIOD_SECONDS": "5" if short else "10",
            "EDGEWAVE_LAST_SEEN_REFRESH_SECONDS": "30",
            "EDGEWAVE_GATEWAY_LISTEN": "127.0.0.1:0",
            "EDGEWAVE_GATEWAY_PORT_FILE": str(gateway_port_file(workdir)),
        }
    )
    argv = [
        *script("edgewave", "edgewave_operator.cli"),
        "operator",
        "run",
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--namespace",
        constants.OPERATOR_NAMESPACE,
    ]
    return processes.spawn(
        argv, name="operator", log_path=workdir / "operator.log", detached=detached, env=env
    )


def wait_gateway(*, operator: processes.Child, workdir: Path, timeout: float = 120.0) -> str:
    """The embedded gateway's address, once the operator leads and has bound it."""
    port_file = gateway_port_file(workdir)
    deadline = time.monotonic() + timeout
    while not port_file.exists():
        check_alive(operator)
        if time.monotonic() > deadline:
            raise constants.DemoFailed(
                f"the operator did not start its gateway in {timeout:.0f} s; its log is "
                f"{operator.log_path}:\n{processes.log_tail(operator.log_path)}"
            )
        time.sleep(constants.POLL_SECONDS)
    return f"127.0.0.1:{json.loads(port_file.read_text())['port']}"


def wait_operator(
    cluster: clusters.DevCluster,
    *,
    operator: processes.Child,
    agents: Sequence[fleet.Agent],
    say: constants.Say,
    timeout: float = 120.0,
) -> None:
    """Until the webhook is registered and every agent is reachable through the gateway."""
    deadline = time.monotonic() + timeout
    path = (
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"
        + constants.WEBHOOK_CONFIGURATION
    )
    names = {agent.site.name for agent in agents}
    while True:
        check_alive(operator)
        webhook, _ = cluster.request("GET", path)
        reachable = asyncio.run(_reachable(cluster.kubeconfig)) & names
        if webhook == 200 and reachable == names:
            return
        if time.monotonic() > deadline:
            missing = ", ".join(sorted(names - reachable)) or "none"
            raise constants.DemoFailed(
                f"the operator did not get ready in {timeout:.0f} s (webhook registered: "
                f"{webhook == 200}; agents not reachable: {missing}); its log is "
                f"{operator.log_path}:\n{processes.log_tail(operator.log_path)}"
            )
        time.sleep(constants.POLL_SECONDS)


async def _reachable(kubeconfig: Path) -> set[str]:
    async with reading.Cluster(kubeconfig) as cluster:
        found = await cluster.agents()
    return {
        agent.metadata.name or ""
        for agent in found
        if agent.status is not None
        and conditions.is_true(agent.status.conditions, edgeagent.AgentConditionType.REACHABLE)
    }


def check_alive(child: processes.Child) -> None:
    if processes.is_gone(child):
        raise constants.DemoFailed(
            f"the {child.name} process exited; its log ({child.log_path}) ends:\n"
            + processes.log_tail(child.log_path, lines=30)
        )


def start_traffic(
    agents: Sequence[fleet.Agent],
    *,
    trust: fleet.Trust,
    models_: Sequence[models.ModelFile],
    workdir: Path,
    detached: bool,
) -> processes.Child:
    shapes = {model.name: model.request_shape for model in models_}
    plan = traffic.Plan(
        ca_file=trust.ca_file,
        targets=[
            traffic.Target(agent=a.site.name, endpoint=a.serving, model=name, shape=shape)
            for a in agents
            for name, shape in shapes.items()
        ],
    )
    plan_file = workdir / "traffic.json"
    plan_file.write_text(plan.model_dump_json(indent=2))
    env = processes.child_environment(os.environ)
    return processes.spawn(
        [sys.executable, "-m", "edgewave_operator.demo.traffic", str(plan_file)],
        name="traffic",
        log_path=workdir / "traffic.log",
        detached=detached,
        env=env,
    )
