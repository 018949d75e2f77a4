"""The demo, step by step: control plane, CRDs, agents, operator, models, rollouts, plan, inference.

Everything runs as it does in production, only on one machine: the operator is an
`edgewave operator run` process (leader-elected, serving the residency webhook), each agent
an `edgewave-agent serve` process with its own certificate from the operator's CA, and the
rollouts are the samples in docs/examples. A traffic process plays the agents' clients so
health gates have requests to measure.

Every process is started by `devcluster.processes`: tied to this process's life (the
kernel kills it if the demo dies) and stopped in order when the demo ends, so nothing is
left behind. With `keep`, they are started detached instead, recorded in the state
directory (`keeping`), and `keeping.down` stops them later.
"""

from __future__ import annotations

import contextlib
import datetime
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from edgewave_api import edgeagent, modelrollout
from edgewave_api.errors import TemporaryError
from edgewave_operator.demo import (
    applying,
    constants,
    fleet,
    following,
    inference,
    keeping,
    manifests,
    models,
    starting,
)
from edgewave_operator.devcluster import clusters, locations, processes
from edgewave_operator.views import agents as agent_views
from edgewave_operator.views import progress

INFERENCE_AGENT = "edge-eu-west-1"
STEPS = 10


@dataclass(frozen=True)
class Options:
    keep: bool = False
    short: bool = False
    state_dir: Path = field(default_factory=locations.default_state_dir)
    crds_dir: Path = field(default_factory=locations.crds_dir)
    fleet_file: Path = manifests.FLEET_FILE
    rollout_timeout: float = 600.0


@dataclass
class Outcome:
    rollouts: list[modelrollout.ModelRollout]
    agents: list[edgeagent.EdgeAgent]
    answer: inference.Answer
    seconds: float


class _Steps:
    def __init__(self, say: constants.Say) -> None:
        self._say = say
        self._number = 0

    def __call__(self, text: str) -> None:
        self._number += 1
        self._say(f"[{self._number}/{STEPS}] {text}")


def run(options: Options, *, say: constants.Say, console: Console) -> Outcome:
    """The whole demo; returns what it ended with (everything is stopped unless `keep`)."""
    started = time.monotonic()
    step = _Steps(say)
    with processes.sigterm_interrupts(), contextlib.ExitStack() as cleanup:
        cluster, workdir = starting.control_plane(
            keep=options.keep, state_dir=options.state_dir, cleanup=cleanup, step=step
        )
        starting.install_crds(cluster, crds_dir=options.crds_dir, step=step)
        children: list[processes.Child] = []
        cleanup.callback(processes.stop, children)  # stopped together, before the cluster

        trust = starting.trust_material(cluster, directory=workdir / "pki")
        step(f"operator trust: CA and activation key in Secrets in {constants.OPERATOR_NAMESPACE}")

        operator, agents = _start_operator_and_agents(
            cluster, workdir=workdir, trust=trust, options=options, children=children,
            step=step, say=say,
        )  # fmt: skip
        say("$ kubectl get edgeagents")
        say(cluster.kubectl("get", "edgeagents").stdout.rstrip())

        generated = applying.generate_models(workdir / "models")
        traffic_child = starting.start_traffic(
            agents, trust=trust, models_=generated, workdir=workdir, detached=options.keep
        )
        children.append(traffic_child)
        step(
            "models generated: "
            + ", ".join(f"{m.name} {m.version} (sha256 {m.sha256[:12]})" for m in generated)
        )

        timing = manifests.SHORT if options.short else None
        global_v1, eu_v1, global_v2 = generated
        applying.apply_rollouts(cluster, global_=global_v1, eu=eu_v1, timing=timing, say=say)
        step("applied ResidencyPolicy eu-only and ModelRollouts classifier-global, classifier-eu")
        following.follow(
            cluster,
            wanted={
                "classifier-global": constants.FIRST_VERSION,
                "classifier-eu": constants.FIRST_VERSION,
            },
            console=console,
            say=say,
            timeout=options.rollout_timeout,
            operator=operator,
        )
        rendered = manifests.rollout(
            manifests.example(manifests.GLOBAL_ROLLOUT), model=global_v2, short=timing
        )
        cluster.kubectl(
            "apply", "-n", constants.ROLLOUT_NAMESPACE, "-f", "-", input=manifests.dump(rendered)
        )
        say(
            f"upgrading {constants.GLOBAL_MODEL} to {constants.UPGRADE_VERSION} (same waves, gates)"
        )
        rollouts, final_agents = following.follow(
            cluster,
            wanted={
                "classifier-global": constants.UPGRADE_VERSION,
                "classifier-eu": constants.FIRST_VERSION,
            },
            console=console,
            say=say,
            timeout=options.rollout_timeout,
            operator=operator,
        )
        step("both rollouts Ready; where every model is now:")
        console.print(progress.render(rollouts, final_agents, now=_now()))
        console.print(agent_views.table(agent_views.rows(final_agents), now=_now()))

        step("the same rollouts on a GPU fleet, as a dry run (real TensorRT-RTX builds):")
        for name in ("classifier-global", "classifier-eu"):
            _plan(cluster, rollout=name, fleet_file=options.fleet_file, say=say, console=console)

        by_name = {agent.site.name: agent for agent in agents}
        answer = inference.once(
            agent=INFERENCE_AGENT,
            endpoint=by_name[INFERENCE_AGENT].serving,
            ca_file=trust.ca_file,
            model=constants.GLOBAL_MODEL,
            shape=global_v2.request_shape,
        )
        step(answer.line())
        _show_residency_to_clients(by_name["edge-us-east-1"], trust=trust, model=eu_v1, say=say)

        if options.keep:
            keeping.record(
                options.state_dir / keeping.STATE_FILE,
                keeping.Recorded(
                    kubeconfig=cluster.kubeconfig,
                    ca_file=trust.ca_file,
                    workdir=workdir,
                    processes=[keeping.as_recorded(child) for child in children],
                    agents={a.site.name: a.serving for a in agents},
                ),
            )
            cleanup.pop_all()  # everything stays up
            keeping.show_kept(cluster, state_dir=options.state_dir, say=say)
        else:
            say("stopping operator, agents and control plane (`make demo ARGS=--keep` keeps them)")
    seconds = time.monotonic() - started
    say(f"demo finished in {seconds:.0f} s" + ("" if options.keep else "; no process left behind"))
    return Outcome(rollouts=rollouts, agents=final_agents, answer=answer, seconds=seconds)


def _start_operator_and_agents(
    cluster: clusters.DevCluster,
    *,
    workdir: Path,
    trust: fleet.Trust,
    options: Options,
    children: list[processes.Child],
    step: _Steps,
    say: constants.Say,
) -> tuple[processes.Child, list[fleet.Agent]]:
    """The operator first: the agents dial its embedded gateway (they open no control port)."""
    operator = starting.start_operator(
        cluster, workdir=workdir, short=options.short, detached=options.keep
    )
    children.append(operator)
    gateway = starting.wait_gateway(operator=operator, workdir=workdir)
    agents = fleet.start(
        fleet.SITES,
        directory=workdir / "agents",
        trust=trust,
        short=options.short,
        detached=options.keep,
        gateway=gateway,
    )
    children += [agent.child for agent in agents]
    cluster.kubectl("apply", "-f", "-", input=starting.edge_agents(agents))
    step(
        f"six edge agents started, dialling the operator's gateway at {gateway} (no control"
        " ports), declared as EdgeAgents without endpoints: "
        + ", ".join(f"{a.site.name} ({a.site.region})" for a in agents)
    )
    starting.wait_operator(cluster, operator=operator, agents=agents, say=say)
    step(f"operator running (pid {operator.identity.pid}); every agent connected to its gateway")
    return operator, agents


def _plan(
    cluster: clusters.DevCluster,
    *,
    rollout: str,
    fleet_file: Path,
    say: constants.Say,
    console: Console,
) -> None:
    argv = [
        *starting.script("edgewave", "edgewave_operator.cli"),
        "plan",
        rollout,
        "--fleet",
        str(fleet_file),
    ]
    say(f"$ edgewave plan {rollout} --fleet {_shown(fleet_file)}")
    console.file.flush()
    sys.stdout.flush()
    result = subprocess.run(argv, env=cluster.environment(), check=False, timeout=300)
    if result.returncode != 0:
        raise constants.DemoFailed(
            f"`edgewave plan {rollout}` exited {result.returncode}; see above"
        )


def _show_residency_to_clients(
    agent: fleet.Agent, *, trust: fleet.Trust, model: models.ModelFile, say: constants.Say
) -> None:
    try:
        inference.once(
            agent=agent.site.name,
            endpoint=agent.serving,
            ca_file=trust.ca_file,
            model=model.name,
            shape=model.request_shape,
        )
    except TemporaryError as error:
        say(f"residency: {error}")
        return
    raise constants.DemoFailed(f"{agent.site.name} in {agent.site.region} served {model.name}")


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
