"""Both components serve their own registry on /metrics over real HTTP, on port 0."""

from __future__ import annotations

import logging
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgewave_agent import metrics as agent_metrics
from edgewave_api.telemetry import exposition
from edgewave_operator import metrics as operator_metrics

pytestmark = pytest.mark.integration


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_operator_and_agents_serve_their_own_numbers() -> None:
    operator = operator_metrics.OperatorMetrics()
    agents = [agent_metrics.AgentMetrics(agent=f"edge-{i}", region="eu") for i in range(2)]
    servers = [operator.serve(host="127.0.0.1"), *(a.serve(host="127.0.0.1") for a in agents)]
    try:
        assert all(server.port > 0 for server in servers)
        assert len({server.port for server in servers}) == 3
        size = 3 * 65536 + 17
        for agent in agents:
            agent.push_received(size)
            agent.set_active(model="det", version="2", backend="onnxruntime", digest="sha256:aa")
        operator.push_sent(region="eu", amount=size * len(agents))
        operator.set_agent_reachable(agent="edge-0", region="eu", reachable=True)

        scraped_operator = scrape(servers[0].url)
        assert scraped_operator[("edgewave_push_bytes_total", frozenset({("region", "eu")}))] == (
            size * 2
        )
        reachable = frozenset({("agent", "edge-0"), ("region", "eu")})
        assert scraped_operator[("edgewave_agent_reachable", reachable)] == 1
        for index, server in enumerate(servers[1:]):
            scraped = scrape(server.url)
            assert scraped[("edgewave_agent_push_received_bytes_total", frozenset())] == size
            identity = {("agent", f"edge-{index}"), ("region", "eu"), ("zone", "")}
            assert scraped[("edgewave_agent_info", frozenset(identity))] == 1
            active = {("model", "det"), ("version", "2"), ("backend", "onnxruntime")}
            assert scraped[("edgewave_agent_active_model_info", frozenset(
                {*active, ("digest", "sha256:aa")}
            ))] == 1  # fmt: skip
    finally:
        for server in servers:
            server.close()


def test_a_taken_port_is_reported_with_what_to_do() -> None:
    first = agent_metrics.AgentMetrics(agent="a").serve(host="127.0.0.1")
    try:
        with pytest.raises(exposition.MetricsServeError, match="choose another --metrics-port"):
            agent_metrics.AgentMetrics(agent="b").serve(host="127.0.0.1", port=first.port)
    finally:
        first.close()


def test_the_operator_logs_the_port_it_picked(caplog: pytest.LogCaptureFixture) -> None:
    """With port 0 the log line is how a test (or a person) finds the endpoint."""
    caplog.set_level(logging.INFO, logger=operator_metrics.__name__)
    metrics = operator_metrics.OperatorMetrics()
    metrics.push_sent(region="eu", amount=5)
    server = metrics.serve(host="127.0.0.1")
    try:
        (url,) = [m.removeprefix("metrics listening on ") for m in caplog.messages
                  if m.startswith("metrics listening on ")]  # fmt: skip
        assert url == f"http://127.0.0.1:{server.port}/metrics"
        assert scrape(url)[("edgewave_push_bytes_total", frozenset({("region", "eu")}))] == 5
    finally:
        server.close()
