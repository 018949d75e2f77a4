"""Prometheus metrics declared together with their documentation, on a registry of their own.

Each component (the operator, every agent) owns a `Catalog`: its own `CollectorRegistry`, so a
thousand agents in one process (the scale benchmark) never clash on a name, and a list of what
it declared, so the metric reference in docs/observability.md and the Grafana dashboard are
checked against the code rather than kept in step by hand. Names are checked on declaration
against Prometheus conventions: `edgewave_` prefix, counters end in `_total`, histograms in a
base unit (`_seconds`, `_bytes`), info metrics in `_info`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Literal

import prometheus_client

Kind = Literal["counter", "gauge", "histogram", "info"]
PREFIX = "edgewave_"
UNITS = ("_seconds", "_bytes")


@dataclasses.dataclass(frozen=True)
class MetricDoc:
    """One metric as a scraper sees it: the exposed name, type, labels and meaning."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()

    def series(self) -> frozenset[str]:
        """Every sample name this metric can expose (`_bucket`, `_created`, ... included)."""
        if self.kind == "counter":
            base = self.name.removesuffix("_total")
            return frozenset({self.name, f"{base}_created"})
        if self.kind == "histogram":
            suffixes = ("_bucket", "_sum", "_count", "_created")
            return frozenset(self.name + suffix for suffix in suffixes)
        return frozenset({self.name})


def check_name(name: str, kind: Kind) -> None:
    """Raise ValueError unless `name` follows the conventions for `kind`."""
    problems: list[str] = []
    if not name.startswith(PREFIX):
        problems.append(f"start with {PREFIX}")
    if kind == "counter" and not name.endswith("_total"):
        problems.append("end in _total (a counter)")
    if kind != "counter" and name.endswith("_total"):
        problems.append("not end in _total (only counters do)")
    if kind == "histogram" and not name.endswith(UNITS):
        problems.append(f"end in a base unit ({', '.join(UNITS)})")
    if kind == "info" and not name.endswith("_info"):
        problems.append("end in _info (an info metric)")
    if problems:
        raise ValueError(f"metric name {name!r} must {' and '.join(problems)}")


class Catalog:
    """Declares metrics on one registry and remembers their documentation."""

    def __init__(self, registry: prometheus_client.CollectorRegistry | None = None) -> None:
        self.registry = registry or prometheus_client.CollectorRegistry()
        self.docs: list[MetricDoc] = []

    def _declare(self, name: str, kind: Kind, *, help: str, labels: Sequence[str]) -> None:
        check_name(name, kind)
        self.docs.append(MetricDoc(name=name, kind=kind, help=help, labels=tuple(labels)))

    def counter(
        self, name: str, help: str, *, labels: Sequence[str] = ()
    ) -> prometheus_client.Counter:
        self._declare(name, "counter", help=help, labels=labels)
        return prometheus_client.Counter(
            name.removesuffix("_total"), help, labelnames=labels, registry=self.registry
        )

    def gauge(self, name: str, help: str, *, labels: Sequence[str] = ()) -> prometheus_client.Gauge:
        self._declare(name, "gauge", help=help, labels=labels)
        return prometheus_client.Gauge(name, help, labelnames=labels, registry=self.registry)

    def histogram(
        self,
        name: str,
        help: str,
        *,
        buckets: Sequence[float],
        labels: Sequence[str] = (),
    ) -> prometheus_client.Histogram:
        self._declare(name, "histogram", help=help, labels=labels)
        return prometheus_client.Histogram(
            name, help, labelnames=labels, buckets=buckets, registry=self.registry
        )

    def info(
        self, name: str, help: str, *, labels: Sequence[str], keys: Sequence[str]
    ) -> prometheus_client.Info:
        """An info metric; `keys` are the label names its value dict supplies."""
        self._declare(name, "info", help=help, labels=(*labels, *keys))
        return prometheus_client.Info(
            name.removesuffix("_info"), help, labelnames=labels, registry=self.registry
        )

    def series(self) -> frozenset[str]:
        """Every sample name this catalog's metrics can expose."""
        return series_of(self.docs)


def series_of(docs: Iterable[MetricDoc]) -> frozenset[str]:
    return frozenset(name for doc in docs for name in doc.series())


def render_table(docs: Iterable[MetricDoc]) -> str:
    """A Markdown table of `docs`, one row per metric, in declaration order."""
    rows = [
        "| Metric | Type | Labels | Meaning |",
        "| --- | --- | --- | --- |",
    ]
    for doc in docs:
        labels = ", ".join(f"`{label}`" for label in doc.labels) or "none"
        rows.append(f"| `{doc.name}` | {doc.kind} | {labels} | {doc.help} |")
    return "\n".join(rows) + "\n"


def render_reference(sections: Sequence[tuple[str, str, Sequence[MetricDoc]]]) -> str:
    """The metric reference page: one (title, introduction, docs) section per component."""
    parts = [
        "<!-- Generated by tools/metricsdoc.py from the metric catalogs. "
        "Do not edit: `make generate`. -->\n# Metric reference\n",
        "Every metric the operator and the edge agents export, generated from the code, so "
        "this page cannot drift from it. How to turn metrics on and scrape them is in "
        "[observability.md](observability.md); the Grafana dashboard "
        "[dashboards/edgewave.json](dashboards/edgewave.json) is built on these names only.\n",
    ]
    for title, introduction, docs in sections:
        parts.append(f"## {title}\n")
        parts.append(f"{introduction}\n")
        parts.append(render_table(docs))
    return "\n".join(parts)
