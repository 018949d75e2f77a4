"""A rollout seen through telemetry: the real operator process, real agents, real scrapes.

Both tests run one three-wave rollout (one agent per region) with the operator as a subprocess,
as in production. Metrics are scraped over HTTP from the operator's `/metrics` (its port, picked
by the system, read from its `metrics listening on` log line) and from each agent's. Traces:
the operator prints its spans as JSON lines (`EDGEWAVE_TRACE_EXPORTER=console`), the agents,
in this process, send theirs to an in-memory exporter; both sides must be one trace.

This module's `host` replaces the directory's: three agents, each with `AgentMetrics` served
on port 0 and the tracing server interceptor.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from edgewave_agent import metrics as agent_metrics
from edgewave_agent import settings as agent_settings
from edgewave_agent import testing
from edgewave_agent.server import AgentServer
from edgewave_api.telemetry import exposition, interceptors, tracing

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Fixtures from this directory's conftest (Fleet, Operators, ...), typed loosely here.
Fleet = Any
Operators = Any
ModelFiles = Callable[[float], tuple[str, str]]
MakeRollout = Callable[..., dict[str, Any]]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
T = TypeVar("T")

AGENTS = (("tw-0", "eu-west", "EU"), ("tc-0", "eu-central", "EU"), ("tu-0", "us-east", "US"))
WAVES = 3
AGENT_STEPS = ("receive", "verify", "load", "warm_up")
METRICS_LINE = re.compile(r"metrics listening on http://\S+?:(\d+)/metrics")


@dataclasses.dataclass
class Agent:
    agent_id: str
    region: str
    jurisdiction: str
    server: AgentServer
    metrics: exposition.MetricsServer

    @property
    def endpoint(self) -> str:
        return f"localhost:{self.server.control_port}"


class TelemetryHost:
    """Agents with metrics and trace interceptors, on one background event loop."""

    def __init__(self, pki: testing.Pki, root: Path) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.background = testing.BackgroundLoop()
        self.agents: dict[str, Agent] = {}
        self.pki = pki
        self.root = root

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return self.background.call(coroutine, timeout)

    def start(self, agent_id: str, *, region: str, jurisdiction: str) -> None:
        raw = testing.agent_config(
            pki_=self.pki,
            data_dir=self.root / agent_id,
            agent_id=agent_id,
            region=region,
            zone=f"{region}-a",
            jurisdiction=jurisdiction,
            health_window_seconds=5.0,
        )
        observer = agent_metrics.AgentMetrics(agent=agent_id, region=region, zone=f"{region}-a")
        server = AgentServer(
            agent_settings.parse(raw, source=agent_id),
            gpus=[],
            inference_threads=1,
            observer=observer,
            interceptors=[interceptors.AioServerInterceptor(agent=agent_id)],
        )
        self.call(server.start())
        self.agents[agent_id] = Agent(
            agent_id=agent_id,
            region=region,
            jurisdiction=jurisdiction,
            server=server,
            metrics=observer.serve(host="127.0.0.1"),
        )

    def close(self) -> None:
        for agent in self.agents.values():
            agent.metrics.close()
            self.call(agent.server.stop(grace=0))
        self.background.close()


@pytest.fixture(scope="module")
def host(pki: testing.Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TelemetryHost]:
    made = TelemetryHost(pki, tmp_path_factory.mktemp("telemetry-agents"))
    try:
        # Agent spans go to the in-memory exporter while this module runs.
        with tracing.use_provider(made.provider):
            for agent_id, region, jurisdiction in AGENTS:
                made.start(agent_id, region=region, jurisdiction=jurisdiction)
            yield made
    finally:
        made.close()


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


def wait_for(check: Callable[[], T | None], *, what: str, logs: Callable[[], str]) -> T:
    deadline = time.monotonic() + 60
    while (found := check()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{logs()}")
        time.sleep(0.1)
    return found


def roll_out(
    name: str, *, fleet: Fleet, operators: Operators, uri: str, sha: str, make: MakeRollout
) -> dict[str, Any]:
    """Apply a three-wave rollout of `name` and wait for Ready; its final body."""
    fleet.apply(
        make(name, namespace=fleet.namespace, model=name, version="1.0.0", uri=uri, sha256=sha)
    )
    result = fleet.kube.kubectl(
        "wait", "--for=condition=Ready", f"mro/{name}", "-n", fleet.namespace, "--timeout=90s",
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{result.stderr}\n{operators.logs()}"
    body: dict[str, Any] = fleet.get("mro", name)
    assert body["status"]["phase"] == "Succeeded"
    return body


def test_scraped_counters_move_by_what_the_rollout_did(
    *, fleet: Fleet, operators: Operators, model_files: ModelFiles, make_rollout: MakeRollout
) -> None:
    host: TelemetryHost = fleet.host
    operator = operators.start(metrics_port="0")

    def metrics_port() -> int | None:
        found = METRICS_LINE.search(operator.log_path.read_text(errors="replace"))
        return int(found.group(1)) if found else None

    port = wait_for(metrics_port, what="the operator's metrics port in its log",
                    logs=operators.logs)  # fmt: skip
    operator_url = f"http://127.0.0.1:{port}/metrics"
    agent_urls = {a.agent_id: f"http://127.0.0.1:{a.metrics.port}/metrics"
                  for a in host.agents.values()}  # fmt: skip
    before = {agent_id: scrape(url) for agent_id, url in agent_urls.items()}
    received = "edgewave_agent_push_received_bytes_total"
    stored = "edgewave_agent_pushes_total"

    uri, sha = model_files(4.0)
    body = roll_out("counted", fleet=fleet, operators=operators, uri=uri, sha=sha,
                    make=make_rollout)  # fmt: skip
    (engine,) = body["status"]["engines"]
    size = engine["sizeBytes"]
    assert size > 0

    # The phase gauge moves when the operator records the step; wait for that one scrape.
    def succeeded() -> Samples | None:
        samples = scrape(operator_url)
        return samples if value(samples, "edgewave_rollouts", phase="Succeeded") == 1 else None

    scraped = wait_for(succeeded, what="edgewave_rollouts{phase='Succeeded'} == 1",
                       logs=operators.logs)  # fmt: skip
    agents = len(host.agents)
    assert total(scraped, "edgewave_push_bytes_total") == size * agents
    for _, region, _ in AGENTS:
        assert value(scraped, "edgewave_push_bytes_total", region=region) == size
    assert total(scraped, "edgewave_pushes_total", result="ok") == agents
    assert total(scraped, "edgewave_pushes_total", result="failed") == 0
    assert value(scraped, "edgewave_push_duration_seconds_count") == agents
    assert value(scraped, "edgewave_waves_total", result="passed") == WAVES
    assert value(scraped, "edgewave_waves_total", result="failed") == 0
    assert total(scraped, "edgewave_rollbacks_total") == 0
    assert value(scraped, "edgewave_rollouts", phase="Progressing") == 0
    for agent in host.agents.values():
        reachable = {"agent": fleet.name(agent.agent_id), "region": agent.region}
        assert value(scraped, "edgewave_agent_reachable", **reachable) == 1

    for agent_id, url in agent_urls.items():
        after = scrape(url)
        earlier = before[agent_id]
        assert value(after, received) - value(earlier, received) == size, agent_id
        assert (
            value(after, stored, result="stored") - value(earlier, stored, result="stored") == 1
        ), agent_id
        active = [
            dict(labels)
            for (n, labels), v in after.items()
            if n == "edgewave_agent_active_model_info" and v == 1
        ]
        assert [
            (a["model"], a["version"], a["digest"].removeprefix("sha256:")) for a in active
        ] == [("counted", "1.0.0", engine["digest"].removeprefix("sha256:"))], agent_id


@dataclasses.dataclass(frozen=True)
class PrintedSpan:
    """One span from the operator's console exporter (a JSON line)."""

    name: str
    trace_id: int
    span_id: int
    parent_id: int | None
    attributes: dict[str, Any]


def printed_spans(log: str) -> list[PrintedSpan]:
    found: list[PrintedSpan] = []
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line still being written
        if not isinstance(raw, dict) or "context" not in raw:
            continue
        parent = raw.get("parent_id")
        found.append(
            PrintedSpan(
                name=raw["name"],
                trace_id=int(raw["context"]["trace_id"], 16),
                span_id=int(raw["context"]["span_id"], 16),
                parent_id=int(parent, 16) if parent else None,
                attributes=raw.get("attributes") or {},
            )
        )
    return found


def test_operator_and_agent_spans_form_one_trace_per_rollout(
    *, fleet: Fleet, operators: Operators, model_files: ModelFiles, make_rollout: MakeRollout
) -> None:
    host: TelemetryHost = fleet.host
    host.exporter.clear()
    operator = operators.start(trace_exporter="console")
    uri, sha = model_files(5.0)
    body = roll_out("traced", fleet=fleet, operators=operators, uri=uri, sha=sha,
                    make=make_rollout)  # fmt: skip
    trace_id = int(
        tracing.rollout_trace_id(
            uid=body["metadata"]["uid"], generation=body["metadata"]["generation"]
        ),
        16,
    )

    def operator_spans() -> list[PrintedSpan] | None:
        spans = [
            s
            for s in printed_spans(operator.log_path.read_text(errors="replace"))
            if s.trace_id == trace_id
        ]
        names = {s.name for s in spans}
        wanted = {"rollout", "plan", "compile", "wave", "push", "activate", "gate"}
        pushes = sum(1 for s in spans if s.name == "push")
        return spans if wanted <= names and pushes >= len(host.agents) else None

    spans = wait_for(operator_spans, what="the operator's rollout spans", logs=operators.logs)
    by_id = {s.span_id: s for s in spans}

    def parent_name(span: PrintedSpan) -> str | None:
        parent = by_id.get(span.parent_id) if span.parent_id is not None else None
        return parent.name if parent else None

    # Every handler turn is a `rollout` span under the generation's one virtual root.
    turns = [s for s in spans if s.name == "rollout"]
    roots = {s.parent_id for s in turns}
    assert len(roots) == 1 and roots.isdisjoint(by_id), roots
    assert {s.attributes.get("edgewave.operation") for s in turns} >= {"plan", "act"}
    expected_parents = {
        "plan": "rollout",
        "compile": "plan",
        "wave": "rollout",
        "push": "wave",
        "activate": "wave",
        "gate": "rollout",
    }
    for name, parent in expected_parents.items():
        found = [s for s in spans if s.name == name]
        assert found and all(parent_name(s) == parent for s in found), (name, parent, found)
    pushes = [s for s in spans if s.name == "push"]
    activations = [s for s in spans if s.name == "activate"]
    assert sorted(s.attributes["edgewave.agent"] for s in pushes) == sorted(
        fleet.name(a) for a, _, _ in AGENTS
    )
    assert len(activations) == len(host.agents)
    assert {s.attributes["edgewave.wave"] for s in spans if s.name == "wave"} == {
        "canary", "eu", "us"
    }  # fmt: skip

    # Agent side: each RPC's server span hangs off the operator's push or activate span.
    agent_spans: list[ReadableSpan] = [
        s for s in host.exporter.get_finished_spans() if s.context.trace_id == trace_id
    ]
    push_rpcs = [s for s in agent_spans if s.name.endswith("AgentService/Push")]
    activate_rpcs = [s for s in agent_spans if s.name.endswith("AgentService/Activate")]
    assert len(push_rpcs) == len(host.agents)
    assert len(activate_rpcs) == len(host.agents)
    assert {s.parent.span_id for s in push_rpcs if s.parent} == {s.span_id for s in pushes}
    assert {s.parent.span_id for s in activate_rpcs if s.parent} == {s.span_id for s in activations}
    steps = {name: [s for s in agent_spans if s.name == name] for name in AGENT_STEPS}
    rpc_ids = {s.context.span_id for s in (*push_rpcs, *activate_rpcs)}
    for name, seen in steps.items():
        assert len(seen) >= len(host.agents), (name, len(seen))
        assert all(s.parent is not None and s.parent.span_id in rpc_ids for s in seen), name
    push_ids = {s.context.span_id for s in push_rpcs}
    assert {s.parent.span_id for s in steps["receive"] if s.parent} == push_ids
