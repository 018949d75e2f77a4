"""The operator's and the agent's metrics move by exactly what their call sites report."""

from __future__ import annotations

from collections.abc import Callable

import prometheus_client
import pytest

from edgewave_agent import metrics as agent_metrics
from edgewave_api.telemetry import catalogs
from edgewave_operator import metrics as operator_metrics


def _value(registry: prometheus_client.CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


AGENTS = "edgewave_rollout_agents"
OperatorCall = Callable[[operator_metrics.OperatorMetrics], None]


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        pytest.param(
            [lambda m: m.wave_finished(passed=True)] * 2
            + [lambda m: m.wave_finished(passed=False)],
            {("edgewave_waves_total", ("result", "passed")): 2.0,
             ("edgewave_waves_total", ("result", "failed")): 1.0},
            id="waves",
        ),
        pytest.param(
            [
                lambda m: m.push_sent(region="eu", amount=1000),
                lambda m: m.push_sent(region="eu", amount=24),
                lambda m: m.push_finished(region="eu", ok=True, seconds=2.0, resumed_bytes=512),
                lambda m: m.push_finished(region="us", ok=False, seconds=0.5),
            ],
            {("edgewave_push_bytes_total", ("region", "eu")): 1024.0,
             ("edgewave_push_resumed_bytes_total", ("region", "eu")): 512.0,
             ("edgewave_push_resumed_bytes_total", ("region", "us")): None,
             ("edgewave_pushes_total", ("region", "eu", "result", "ok")): 1.0,
             ("edgewave_pushes_total", ("region", "us", "result", "failed")): 1.0,
             ("edgewave_push_duration_seconds_count", ()): 2.0,
             ("edgewave_push_duration_seconds_sum", ()): 2.5,
             ("edgewave_push_duration_seconds_bucket", ("le", "1.0")): 1.0},
            id="pushes",
        ),
        pytest.param(
            [
                lambda m: m.compile_finished(backend="tensorrt_rtx", cache_hit=False, seconds=40.0),
                lambda m: m.compile_finished(backend="tensorrt_rtx", cache_hit=True),
                lambda m: m.compile_finished(backend="tensorrt_rtx", cache_hit=True, seconds=9.0),
            ],
            {("edgewave_compile_cache_hits_total", ("backend", "tensorrt_rtx")): 2.0,
             ("edgewave_compile_cache_misses_total", ("backend", "tensorrt_rtx")): 1.0,
             ("edgewave_compile_duration_seconds_count", ("backend", "tensorrt_rtx")): 1.0,
             ("edgewave_compile_duration_seconds_sum", ("backend", "tensorrt_rtx")): 40.0},
            id="compiles (hit ratio 2/3; hits are not timed)",
        ),
        pytest.param(
            [
                lambda m: m.rolled_back(reason="latency"),
                lambda m: m.residency_rejected(region="cn-north", count=3),
                lambda m: m.residency_evicted(region="cn-north"),
            ],
            {("edgewave_rollbacks_total", ("reason", "latency")): 1.0,
             ("edgewave_residency_rejections_total", ("region", "cn-north")): 3.0,
             ("edgewave_residency_evictions_total", ("region", "cn-north")): 1.0},
            id="rollbacks and residency",
        ),
        pytest.param(
            [
                lambda m: m.set_rollout_phase(rollout="ns/a", phase="Progressing"),
                lambda m: m.set_rollout_phase(rollout="ns/b", phase="Progressing"),
                lambda m: m.set_rollout_phase(rollout="ns/a", phase="Progressing"),
                lambda m: m.set_rollout_phase(rollout="ns/a", phase="Ready"),
                lambda m: m.set_rollout_phase(rollout="ns/c", phase="Degraded"),
                lambda m: m.forget_rollout("ns/c"),
                lambda m: m.forget_rollout("ns/never-seen"),
            ],
            {("edgewave_rollouts", ("phase", "Progressing")): 1.0,
             ("edgewave_rollouts", ("phase", "Ready")): 1.0,
             ("edgewave_rollouts", ("phase", "Degraded")): 0.0},
            id="rollouts by phase",
        ),
        pytest.param(
            [
                lambda m: m.set_rollout_progress(rollout="ns/a", region="eu", targets=4, updated=1),
                lambda m: m.set_rollout_progress(rollout="ns/a", region="eu", targets=4, updated=3),
                lambda m: m.set_rollout_progress(rollout="ns/b", region="us", targets=2, updated=2),
                lambda m: m.forget_rollout("ns/b"),
            ],
            {(AGENTS, ("rollout", "ns/a", "region", "eu", "state", "target")): 4.0,
             (AGENTS, ("rollout", "ns/a", "region", "eu", "state", "updated")): 3.0,
             (AGENTS, ("rollout", "ns/b", "region", "us", "state", "target")): None},
            id="rollout progress by region",
        ),
        pytest.param(
            [
                lambda m: m.set_agent_reachable(agent="edge-1", region="eu", reachable=True),
                lambda m: m.set_agent_reachable(agent="edge-1", region="eu", reachable=False),
                lambda m: m.set_agent_reachable(agent="edge-2", region="eu", reachable=True),
                lambda m: m.set_agent_reachable(agent="edge-2", region="us", reachable=True),
                lambda m: m.set_agent_reachable(agent="edge-3", region="us", reachable=True),
                lambda m: m.forget_agent("edge-3"),
            ],
            {("edgewave_agent_reachable", ("agent", "edge-1", "region", "eu")): 0.0,
             ("edgewave_agent_reachable", ("agent", "edge-2", "region", "eu")): None,
             ("edgewave_agent_reachable", ("agent", "edge-2", "region", "us")): 1.0,
             ("edgewave_agent_reachable", ("agent", "edge-3", "region", "us")): None},
            id="agent reachability (moves with the region, leaves with the agent)",
        ),
    ],
)  # fmt: skip
def test_operator_metrics(
    calls: list[OperatorCall], expected: dict[tuple[str, tuple[str, ...]], float | None]
) -> None:
    metrics = operator_metrics.OperatorMetrics()
    for call in calls:
        call(metrics)
    actual = {
        (name, labels): _value(
            metrics.registry, name, **dict(zip(labels[::2], labels[1::2], strict=True))
        )
        for name, labels in expected
    }
    assert actual == expected


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_agent_inference_metrics_per_model_and_version() -> None:
    clock = FakeClock()
    metrics = agent_metrics.AgentMetrics(agent="edge-1", region="eu", zone="eu-1a", clock=clock)
    with metrics.inference(model="det", version="1"):
        clock.now += 0.004
    with pytest.raises(ValueError, match="bad input"), metrics.inference(model="det", version="1"):
        clock.now += 0.2
        raise ValueError("bad input")
    with metrics.inference(model="det") as call:
        clock.now += 0.001
        call.version = "2"  # resolved while serving (the request asked for the active one)
    metrics.observe_inference(model="det", version="2", seconds=0.03, ok=False)

    registry = metrics.registry
    assert (
        _value(registry, "edgewave_agent_inference_requests_total", model="det", version="1") == 2
    )
    assert _value(registry, "edgewave_agent_inference_errors_total", model="det", version="1") == 1
    assert _value(registry, "edgewave_agent_inference_errors_total", model="det", version="2") == 1
    duration = "edgewave_agent_inference_duration_seconds"
    assert _value(registry, f"{duration}_sum", model="det", version="1") == pytest.approx(0.204)
    assert _value(registry, f"{duration}_bucket", model="det", version="1", le="0.005") == 1
    assert _value(registry, f"{duration}_bucket", model="det", version="2", le="0.0025") == 1
    assert _value(registry, f"{duration}_count", model="det", version="2") == 2
    assert _value(registry, "edgewave_agent_info", agent="edge-1", region="eu", zone="eu-1a") == 1


def test_agent_active_version_store_and_push_metrics() -> None:
    metrics = agent_metrics.AgentMetrics(agent="edge-1")
    metrics.set_active(model="det", version="1", backend="onnxruntime", digest="sha256:01")
    metrics.set_active(model="det", version="2", backend="onnxruntime", digest="sha256:02")
    metrics.set_active(model="seg", version="5", backend="tensorrt", digest="sha256:05")
    metrics.clear_active("seg")
    metrics.clear_active("never-active")
    for chunk in (65536, 65536, 100):
        metrics.push_received(chunk)
    metrics.push_finished(result="stored")
    metrics.activation_finished(result="refused")
    metrics.set_store_bytes(131172)
    assert _value(metrics.registry, "edgewave_agent_store_bytes") == 131172
    held = [4096]
    metrics.track_store_bytes(lambda: held[0])
    held[0] = 8192

    registry = metrics.registry
    active = "edgewave_agent_active_model_info"
    v1 = {"model": "det", "version": "1", "backend": "onnxruntime", "digest": "sha256:01"}
    v2 = {**v1, "version": "2", "digest": "sha256:02"}
    assert _value(registry, active, **v1) is None
    assert _value(registry, active, **v2) == 1
    seg = {"model": "seg", "version": "5", "backend": "tensorrt", "digest": "sha256:05"}
    assert _value(registry, active, **seg) is None
    assert _value(registry, "edgewave_agent_push_received_bytes_total") == 131172
    assert _value(registry, "edgewave_agent_pushes_total", result="stored") == 1
    assert _value(registry, "edgewave_agent_activations_total", result="refused") == 1
    assert _value(registry, "edgewave_agent_store_bytes") == 8192


def test_many_agents_in_one_process_keep_their_own_numbers() -> None:
    fleet = [agent_metrics.AgentMetrics(agent=f"edge-{i}") for i in range(300)]
    for index, metrics in enumerate(fleet):
        metrics.push_received(index)
    assert [
        _value(metrics.registry, "edgewave_agent_push_received_bytes_total") for metrics in fleet
    ] == [float(index) for index in range(300)]
    operators = [operator_metrics.OperatorMetrics() for _ in range(2)]
    operators[0].rolled_back(reason="latency")
    assert _value(operators[1].registry, "edgewave_rollbacks_total", reason="latency") is None


@pytest.mark.parametrize(
    ("name", "kind", "problem"),
    [
        ("pushes_total", "counter", "start with edgewave_"),
        ("edgewave_pushes", "counter", "end in _total"),
        ("edgewave_rollouts_total", "gauge", "not end in _total"),
        ("edgewave_push_duration", "histogram", "end in a base unit"),
        ("edgewave_push_duration_ms", "histogram", "end in a base unit"),
        ("edgewave_agent", "info", "end in _info"),
    ],
)
def test_names_breaking_conventions_are_refused(name: str, kind: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        catalogs.check_name(name, kind)  # type: ignore[arg-type]


def test_every_declared_metric_is_exactly_what_the_registry_exposes() -> None:
    """With every call site exercised, the catalog's series are the samples really emitted."""
    operator = operator_metrics.OperatorMetrics()
    operator.set_rollout_phase(rollout="ns/a", phase="Ready")
    operator.set_rollout_progress(rollout="ns/a", region="eu", targets=1, updated=1)
    operator.wave_finished(passed=True)
    operator.push_sent(region="eu", amount=1)
    operator.push_finished(region="eu", ok=True, seconds=1.0, resumed_bytes=1)
    operator.compile_finished(backend="onnxruntime", cache_hit=False, seconds=1.0)
    operator.compile_finished(backend="onnxruntime", cache_hit=True)
    operator.rolled_back(reason="latency")
    operator.residency_rejected(region="eu")
    operator.residency_evicted(region="eu")
    operator.set_agent_reachable(agent="edge-1", region="eu", reachable=True)
    agent = agent_metrics.AgentMetrics(agent="edge-1")
    agent.observe_inference(model="m", version="1", seconds=0.1, ok=False)
    agent.set_active(model="m", version="1", backend="onnxruntime", digest="d")
    agent.set_store_bytes(1)
    agent.push_received(1)
    agent.push_finished(result="stored")
    agent.activation_finished(result="activated")
    for metrics in (operator, agent):
        exposed = {
            sample.name for family in metrics.registry.collect() for sample in family.samples
        }
        assert exposed == metrics.catalog.series()
