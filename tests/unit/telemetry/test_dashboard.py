"""The Grafana dashboard queries only metrics the operator and the agents export.

Every PromQL expression in docs/dashboards/edgewave.json (panel targets and template
variables) is tokenized and walked: label matchers, range selectors, grouping clauses and
function calls are set aside, what remains are metric names, and each must be a series the
code's registries expose (`_total`, `_bucket`, `_sum`, `_count` and `_info` included).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgewave_agent import metrics as agent_metrics
from edgewave_operator import metrics as operator_metrics

DASHBOARD = Path(__file__).resolve().parents[3] / "docs" / "dashboards" / "edgewave.json"

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    | (?P<variable>\$\{[^}]*\}|\$\w+)
    | (?P<number>(?:\d+(?:\.\d+)?(?:e[+-]?\d+)?)(?:ms|[smhdwy])*)
    | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<operator>==|!=|=~|!~|>=|<=|[-+*/%^<>=,])
    | (?P<open>[({\[])
    | (?P<close>[)}\]])
    """,
    re.VERBOSE,
)
_PAIRS = {"(": ")", "{": "}", "[": "]"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# Aggregations may be followed by a grouping clause rather than "(": `sum by (x) (...)`.
_AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"cannot parse {expr[position:]!r} in {expr!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append((kind, match.group()))
        position = match.end()
    return tokens


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects; raises ValueError if it is malformed."""
    tokens = _tokens(expr)
    names: set[str] = set()
    stack: list[str] = []
    skip_depth: int | None = None  # inside {...}, [...] or a grouping label list
    for index, (kind, text) in enumerate(tokens):
        following = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        if kind == "open":
            stack.append(_PAIRS[text])
            previous = tokens[index - 1][1] if index else ""
            if skip_depth is None and (text in "{[" or previous in _GROUPING):
                skip_depth = len(stack)
            continue
        if kind == "close":
            if not stack or stack.pop() != text:
                raise ValueError(f"unbalanced {text!r} in {expr!r}")
            if skip_depth is not None and len(stack) < skip_depth:
                skip_depth = None
            continue
        if kind != "name" or skip_depth is not None:
            continue
        if text in _KEYWORDS | _GROUPING | _AGGREGATIONS or following == "(":
            continue
        names.add(text)
    if stack:
        raise ValueError(f"unclosed {stack[-1]!r} in {expr!r}")
    return names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('sum by (region) (rate(a_total{region=~"$region", x="}"}[5m]))', {"a_total"}),
        ("histogram_quantile(0.95, sum by (le, version) (rate(h_bucket[$__rate_interval])))",
         {"h_bucket"}),
        ("sum(rate(a[1h])) / (sum(rate(a[1h])) + sum(rate(b[1h]))) > bool 0.5", {"a", "b"}),
        ("x * on (instance) group_left (region) y_info", {"x", "y_info"}),
        ("count(x == 0) without (agent) or vector(0) offset 5m", {"x"}),
        ("max_over_time(g[10m:1m]) unless ignoring(le) h", {"g", "h"}),
    ],
)  # fmt: skip
def test_metric_names_are_extracted(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize("expr", ["sum(rate(a[5m])", 'a{b="c"', "a]", "a # b"])
def test_malformed_expressions_are_reported(expr: str) -> None:
    with pytest.raises(ValueError, match=r"unbalanced|unclosed|cannot parse"):
        metric_names(expr)


def _expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
        for nested in panel.get("panels", []):
            for target in nested.get("targets", []):
                yield nested["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            label_values = re.fullmatch(r"label_values\((?:(.*),)?\s*\w+\s*\)", text)
            yield f"variable {variable['name']}", label_values.group(1) if label_values else text


def exported_series() -> frozenset[str]:
    return (
        operator_metrics.OperatorMetrics().catalog.series()
        | agent_metrics.AgentMetrics(agent="a").catalog.series()
    )


def test_dashboard_uses_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = exported_series()
    used: dict[str, set[str]] = {}
    for title, expr in _expressions(dashboard):
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        for name in names:
            used.setdefault(name, set()).add(title)
    unknown = {name: sorted(titles) for name, titles in used.items() if name not in exported}
    assert unknown == {}, "the dashboard queries metrics the code does not export"
    # The panels the issue asks for exist.
    titles = {panel["title"] for panel in dashboard["panels"]}
    for wanted in (
        "Rollout progress by region",
        "Push throughput by region",
        "Inference latency (p95) by version",
        "Compile cache hit ratio",
        "Rollbacks by reason",
    ):
        assert wanted in titles


def test_dashboard_panels_have_unique_ids_and_a_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]
