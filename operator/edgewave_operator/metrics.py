"""The operator's Prometheus metrics: rollouts, waves, pushes, compiles, rollbacks, residency.

One `OperatorMetrics` per operator, on its own registry (tests run several operators in one
process). Handlers call the small methods below at the point where the thing happened; the
methods keep the bookkeeping (which phase a rollout was in, which labels an agent had) so that
gauges never double count and deleted objects leave no stale series. The names and their
meaning are listed in docs/observability.md, which a test keeps in step with this module.
"""

from __future__ import annotations

import logging

import prometheus_client

from edgewave_api.telemetry import catalogs, exposition
from edgewave_operator.planning import reconciling, residency, stepping

log = logging.getLogger(__name__)

PUSH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
ROLLBACK_REASONS = {
    "LatencyTooHigh": "latency",
    "ErrorRateTooHigh": "error_rate",
    "ActivationFailed": "activation",
    "ProgressDeadlineExceeded": "unreachable",
    "AgentsOffline": "offline",
    "InsufficientSamples": "insufficient_samples",
}
"""A failure's reason -> the `reason` label of `edgewave_rollbacks_total`."""
RESIDENCY_REASONS = frozenset(reason.value for reason in residency.Reason)
COMPILE_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0)


class OperatorMetrics:
    """The operator's metrics and the calls that move them."""

    def __init__(self, *, registry: prometheus_client.CollectorRegistry | None = None) -> None:
        self.catalog = catalogs.Catalog(registry)
        declare = self.catalog
        self.rollouts = declare.gauge(
            "edgewave_rollouts", "ModelRollouts currently in each phase.", labels=["phase"]
        )
        self.rollout_agents = declare.gauge(
            "edgewave_rollout_agents",
            "Agents of a rollout by region: its targets (state=target) and those already "
            "serving the new version (state=updated).",
            labels=["rollout", "region", "state"],
        )
        self.waves = declare.counter(
            "edgewave_waves_total",
            "Waves whose gate was decided, by result (passed, failed).",
            labels=["result"],
        )
        self.pushes = declare.counter(
            "edgewave_pushes_total",
            "Artifact pushes to agents that ended, by region and result (ok, failed).",
            labels=["region", "result"],
        )
        self.push_bytes = declare.counter(
            "edgewave_push_bytes_total",
            "Artifact bytes sent to agents, by region (bytes a resumed push skipped excluded).",
            labels=["region"],
        )
        self.push_resumed_bytes = declare.counter(
            "edgewave_push_resumed_bytes_total",
            "Artifact bytes not sent because the agent already held them (resumed pushes).",
            labels=["region"],
        )
        self.push_duration = declare.histogram(
            "edgewave_push_duration_seconds",
            "Time to push one artifact to one agent, Stat to verified.",
            buckets=PUSH_BUCKETS,
        )
        self.compile_duration = declare.histogram(
            "edgewave_compile_duration_seconds",
            "Time to build one engine (cache misses only), by backend.",
            buckets=COMPILE_BUCKETS,
            labels=["backend"],
        )
        self.compile_cache_hits = declare.counter(
            "edgewave_compile_cache_hits_total",
            "Engines found in the engine cache, by backend.",
            labels=["backend"],
        )
        self.compile_cache_misses = declare.counter(
            "edgewave_compile_cache_misses_total",
            "Engines that had to be built, by backend.",
            labels=["backend"],
        )
        self.rollbacks = declare.counter(
            "edgewave_rollbacks_total",
            "Rollbacks to the previous version, by reason (latency, error_rate, activation, "
            "unreachable).",
            labels=["reason"],
        )
        self.residency_rejections = declare.counter(
            "edgewave_residency_rejections_total",
            "Agents left out of a rollout because the model may not go to their jurisdiction, "
            "by region.",
            labels=["region"],
        )
        self.residency_evictions = declare.counter(
            "edgewave_residency_evictions_total",
            "Models removed from agents whose jurisdiction no longer allows them, by region.",
            labels=["region"],
        )
        self.agent_reachable = declare.gauge(
            "edgewave_agent_reachable",
            "1 if the agent answered the operator's last Describe, else 0.",
            labels=["agent", "region"],
        )
        self._phases: dict[str, str] = {}
        self._progress: dict[str, set[str]] = {}
        self._agent_regions: dict[str, str] = {}

    @property
    def registry(self) -> prometheus_client.CollectorRegistry:
        return self.catalog.registry

    def serve(self, *, port: int = 0, host: str = "0.0.0.0") -> exposition.MetricsServer:
        """Serve these metrics on http://host:port/metrics (port 0 picks one; see `.port`).

        Logs `metrics listening on <url>` with the bound port, so a port picked by the system
        (EDGEWAVE_METRICS_PORT=0: tests, several operators on one host) can be found.
        """
        server = exposition.serve(self.registry, port=port, host=host)
        log.info("metrics listening on %s", server.url)
        return server

    def set_rollout_phase(self, *, rollout: str, phase: str) -> None:
        """Record that `rollout` (namespace/name) is now in `phase`."""
        previous = self._phases.get(rollout)
        if previous == phase:
            return
        if previous is not None:
            self.rollouts.labels(phase=previous).dec()
        self.rollouts.labels(phase=phase).inc()
        self._phases[rollout] = phase

    def set_rollout_progress(
        self, *, rollout: str, region: str, targets: int, updated: int
    ) -> None:
        """How many of a rollout's agents in `region` it targets and has updated."""
        self.rollout_agents.labels(rollout=rollout, region=region, state="target").set(targets)
        self.rollout_agents.labels(rollout=rollout, region=region, state="updated").set(updated)
        self._progress.setdefault(rollout, set()).add(region)

    def count_turn(self, *, rollout: str, decision: reconciling.Decision) -> None:
        """What one rollout turn decided: phase, progress, finished waves, rollbacks,
        agents newly kept out or evicted by residency."""
        step = decision.step
        self.set_rollout_phase(rollout=rollout, phase=step.progress.phase.value)
        for region in decision.summary.regions:
            totals = region.totals
            self.set_rollout_progress(
                rollout=rollout, region=region.region, targets=totals.targets,
                updated=totals.updated,
            )  # fmt: skip
        for event in step.events:
            if event.reason in (stepping.Reason.WAVE_PASSED, stepping.Reason.WAVE_FAILED):
                self.wave_finished(passed=event.reason == stepping.Reason.WAVE_PASSED)
            elif event.reason == stepping.Reason.ROLLBACK_STARTED:
                failure = step.progress.failure
                self.rolled_back(
                    reason=ROLLBACK_REASONS.get(failure.reason if failure else "", "other")
                )
        for item in decision.newly_excluded:
            if item.reason in RESIDENCY_REASONS:
                self.residency_rejected(region=item.region)
        for eviction in decision.newly_evicted:
            self.residency_evicted(region=eviction.region)

    def forget_rollout(self, rollout: str) -> None:
        """The rollout is gone: drop it from the phase counts and its progress series."""
        phase = self._phases.pop(rollout, None)
        if phase is not None:
            self.rollouts.labels(phase=phase).dec()
        for region in self._progress.pop(rollout, set()):
            for state in ("target", "updated"):
                self.rollout_agents.remove(rollout, region, state)

    def wave_finished(self, *, passed: bool) -> None:
        self.waves.labels(result="passed" if passed else "failed").inc()

    def push_sent(self, *, region: str, amount: int) -> None:
        """`amount` artifact bytes went to an agent in `region` (call per chunk, or once)."""
        self.push_bytes.labels(region=region).inc(amount)

    def push_finished(
        self, *, region: str, ok: bool, seconds: float, resumed_bytes: int = 0
    ) -> None:
        """One push ended; `resumed_bytes` is the offset `Stat` let it skip."""
        self.pushes.labels(region=region, result="ok" if ok else "failed").inc()
        self.push_duration.observe(seconds)
        if resumed_bytes:
            self.push_resumed_bytes.labels(region=region).inc(resumed_bytes)

    def compile_finished(
        self, *, backend: str, cache_hit: bool, seconds: float | None = None
    ) -> None:
        """One engine was looked up; `seconds` is the build time on a miss."""
        if cache_hit:
            self.compile_cache_hits.labels(backend=backend).inc()
            return
        self.compile_cache_misses.labels(backend=backend).inc()
        if seconds is not None:
            self.compile_duration.labels(backend=backend).observe(seconds)

    def rolled_back(self, *, reason: str) -> None:
        """A rollout rolled back; `reason` is one short word (latency, error_rate, ...)."""
        self.rollbacks.labels(reason=reason).inc()

    def residency_rejected(self, *, region: str, count: int = 1) -> None:
        self.residency_rejections.labels(region=region).inc(count)

    def residency_evicted(self, *, region: str, count: int = 1) -> None:
        self.residency_evictions.labels(region=region).inc(count)

    def set_agent_reachable(self, *, agent: str, region: str, reachable: bool) -> None:
        """The outcome of the operator's latest call to `agent`."""
        previous = self._agent_regions.get(agent)
        if previous is not None and previous != region:
            self.agent_reachable.remove(agent, previous)
        self._agent_regions[agent] = region
        self.agent_reachable.labels(agent=agent, region=region).set(1 if reachable else 0)

    def forget_agent(self, agent: str) -> None:
        """The EdgeAgent is gone: drop its series."""
        region = self._agent_regions.pop(agent, None)
        if region is not None:
            self.agent_reachable.remove(agent, region)
