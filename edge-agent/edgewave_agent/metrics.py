"""An edge agent's Prometheus metrics: inference, the active versions, the store and pushes.

One `AgentMetrics` per agent, on its own registry: the scale benchmark runs a thousand agents
in one process, and each must expose only its own numbers. The agent's identity is exported
once as `edgewave_agent_info` (agent, region, zone) for dashboards to join on; the other
series carry no agent label, since each agent is its own scrape target. Durations are measured
with the injected `clock` (monotonic seconds), so tests drive it without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import prometheus_client

from edgewave_api.telemetry import catalogs, exposition

INFERENCE_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class InferenceCall:
    """One request being timed; set `version` once the agent knows which version served it."""

    def __init__(self, version: str) -> None:
        self.version = version


class _InferenceSeries:
    """The three series of one (model, version), looked up once."""

    def __init__(self, metrics: AgentMetrics, *, model: str, version: str) -> None:
        self.requests = metrics.inference_requests.labels(model=model, version=version)
        self.errors = metrics.inference_errors.labels(model=model, version=version)
        self.duration = metrics.inference_duration.labels(model=model, version=version)


class AgentMetrics:
    """One agent's metrics and the calls that move them."""

    def __init__(
        self,
        *,
        agent: str,
        region: str = "",
        zone: str = "",
        registry: prometheus_client.CollectorRegistry | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.catalog = catalogs.Catalog(registry)
        self._clock = clock
        declare = self.catalog
        self.info = declare.info(
            "edgewave_agent_info",
            "This agent's identity and placement (value 1).",
            labels=(),
            keys=("agent", "region", "zone"),
        )
        self.info.info({"agent": agent, "region": region, "zone": zone})
        self.inference_requests = declare.counter(
            "edgewave_agent_inference_requests_total",
            "Inference requests served, by model and version.",
            labels=["model", "version"],
        )
        self.inference_errors = declare.counter(
            "edgewave_agent_inference_errors_total",
            "Inference requests that failed, by model and version.",
            labels=["model", "version"],
        )
        self.inference_duration = declare.histogram(
            "edgewave_agent_inference_duration_seconds",
            "Time to serve one inference request, by model and version.",
            buckets=INFERENCE_BUCKETS,
            labels=["model", "version"],
        )
        self.active_model = declare.info(
            "edgewave_agent_active_model_info",
            "The version each model serves now (value 1).",
            labels=("model",),
            keys=("version", "backend", "digest"),
        )
        self.store_bytes = declare.gauge(
            "edgewave_agent_store_bytes", "Bytes of verified artifacts held in the store."
        )
        self.push_received_bytes = declare.counter(
            "edgewave_agent_push_received_bytes_total",
            "Artifact bytes received in pushes and written to the store's temporary files.",
        )
        self.pushes = declare.counter(
            "edgewave_agent_pushes_total",
            "Pushes that ended, by result (stored, rejected, interrupted).",
            labels=["result"],
        )
        self.activations = declare.counter(
            "edgewave_agent_activations_total",
            "Activations that ended, by result (activated, refused, failed, rolled_back).",
            labels=["result"],
        )
        self._series: dict[tuple[str, str], _InferenceSeries] = {}

    @property
    def registry(self) -> prometheus_client.CollectorRegistry:
        return self.catalog.registry

    def serve(self, *, port: int = 0, host: str = "0.0.0.0") -> exposition.MetricsServer:
        """Serve these metrics on http://host:port/metrics (port 0 picks one; see `.port`)."""
        return exposition.serve(self.registry, port=port, host=host)

    def _of(self, model: str, version: str) -> _InferenceSeries:
        series = self._series.get((model, version))
        if series is None:
            series = self._series[(model, version)] = _InferenceSeries(
                self, model=model, version=version
            )
        return series

    def observe_inference(self, *, model: str, version: str, seconds: float, ok: bool) -> None:
        """Record one inference request that took `seconds`."""
        series = self._of(model, version)
        series.requests.inc()
        series.duration.observe(seconds)
        if not ok:
            series.errors.inc()

    @contextmanager
    def inference(self, *, model: str, version: str = "") -> Iterator[InferenceCall]:
        """Time and count the request served in the block; an exception counts as an error.

        `version` may be empty (the request asked for the active version): set
        `call.version` inside the block when it is resolved.
        """
        call = InferenceCall(version)
        start = self._clock()
        ok = False
        try:
            yield call
            ok = True
        finally:
            self.observe_inference(
                model=model, version=call.version, seconds=self._clock() - start, ok=ok
            )

    def set_active(self, *, model: str, version: str, backend: str, digest: str) -> None:
        """`model` now serves `version` (replaces the previous version's series)."""
        self.active_model.labels(model=model).info(
            {"version": version, "backend": backend, "digest": digest}
        )

    def clear_active(self, model: str) -> None:
        """`model` serves nothing any more (removed)."""
        try:
            self.active_model.remove(model)
        except KeyError:
            return

    def set_store_bytes(self, size: int) -> None:
        self.store_bytes.set(size)

    def track_store_bytes(self, used_bytes: Callable[[], float]) -> None:
        """Read the store's size at every scrape instead (`used_bytes` must be thread-safe)."""
        self.store_bytes.set_function(used_bytes)

    def push_received(self, amount: int) -> None:
        """`amount` bytes of a push arrived (call per chunk)."""
        self.push_received_bytes.inc(amount)

    def push_finished(self, *, result: str) -> None:
        """A push ended: `stored`, `rejected` or `interrupted`."""
        self.pushes.labels(result=result).inc()

    def activation_finished(self, *, result: str) -> None:
        """An activation ended: `activated`, `refused`, `failed` or `rolled_back`."""
        self.activations.labels(result=result).inc()
