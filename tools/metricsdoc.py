"""Generates docs/metrics.md, the metric reference, from the operator's and the agent's catalogs.

Registered in `tools.generate.GENERATORS`, so `make verify` fails when a metric is added,
renamed or re-labelled in code without the reference following.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from edgewave_agent import metrics as agent_metrics
from edgewave_api.telemetry import catalogs
from edgewave_operator import metrics as operator_metrics

PATH = "docs/metrics.md"


def sections() -> Sequence[tuple[str, str, Sequence[catalogs.MetricDoc]]]:
    return (
        (
            "Operator",
            "Served by `edgewave operator run` on its metrics port.",
            operator_metrics.OperatorMetrics().catalog.docs,
        ),
        (
            "Edge agent",
            "Served by every `edgewave-agent serve` on its metrics port; one scrape target per "
            "agent, joined to its region and zone through `edgewave_agent_info`.",
            agent_metrics.AgentMetrics(agent="").catalog.docs,
        ),
    )


def generate() -> Mapping[str, str]:
    return {PATH: catalogs.render_reference(sections())}
