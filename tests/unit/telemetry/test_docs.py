"""The metric reference and observability guide match the code."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from edgewave_agent import metrics as agent_metrics
from edgewave_agent import settings as agent_settings
from edgewave_api.telemetry import logs, tracing
from edgewave_operator import metrics as operator_metrics
from edgewave_operator.settings import OperatorSettings

ROOT = Path(__file__).resolve().parents[3]


def _metricsdoc() -> ModuleType:
    # tools/ is a directory of repo scripts, not an installed package: load it by path.
    spec = importlib.util.spec_from_file_location("metricsdoc", ROOT / "tools" / "metricsdoc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_metric_reference_is_generated_from_the_code() -> None:
    generated = _metricsdoc().generate()
    assert set(generated) == {"docs/metrics.md"}
    on_disk = (ROOT / "docs" / "metrics.md").read_text()
    assert on_disk == generated["docs/metrics.md"], "docs/metrics.md is stale: run make generate"


def test_reference_lists_every_metric_of_both_components() -> None:
    text = (ROOT / "docs" / "metrics.md").read_text()
    listed = set(re.findall(r"^\| `(edgewave_\w+)` \|", text, flags=re.MULTILINE))
    declared = {
        doc.name
        for catalog in (
            operator_metrics.OperatorMetrics().catalog,
            agent_metrics.AgentMetrics(agent="a").catalog,
        )
        for doc in catalog.docs
    }
    assert listed == declared


def test_guide_names_the_real_options() -> None:
    guide = (ROOT / "docs" / "observability.md").read_text()
    for exporter in tracing.EXPORTERS:
        assert f"`{exporter}`" in guide
    for fmt in logs.LOG_FORMATS:
        assert f"`{fmt}`" in guide
    for field in logs.CONTEXT_FIELDS:
        assert f"`{field}`" in guide
    assert "dashboards/edgewave.json" in guide
    assert "metrics.md" in guide


def _blocks(language: str) -> list[str]:
    guide = (ROOT / "docs" / "observability.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", guide, flags=re.DOTALL)


def test_operator_settings_example_is_what_the_operator_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [block] = _blocks("sh")
    for line in block.splitlines():
        name, _, value = line.split("#")[0].strip().partition("=")
        monkeypatch.setenv(name, value)
    settings = OperatorSettings()
    assert settings.metrics_port == 9464
    assert settings.log_format == "json"
    assert settings.trace_exporter == "otlp"
    assert settings.trace_endpoint == "http://otel-collector.monitoring:4317"


def test_agent_settings_example_is_what_the_agent_reads(tmp_path: Path) -> None:
    [block] = _blocks("yaml")
    telemetry = yaml.safe_load(block)["telemetry"]
    config = agent_settings.parse(
        {"agent_id": "a", "data_dir": str(tmp_path), "insecure": True,
         "activation_public_key_pem": "unused", "telemetry": telemetry}
    )  # fmt: skip
    assert config.telemetry.model_dump() == telemetry
