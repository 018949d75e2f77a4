"""What GitOps tools make of a ModelRollout in each state, measured with their own code.

ModelRollouts are rendered from the project's models: the spec of
`docs/examples/modelrollout-multiregion.yaml`, statuses built by the operator's own condition
rule (`planning.conditions.rollout_conditions` through `set_condition`, as the status writer
does), and the freshly created object exactly as the real API server serves it. The pinned
probe in `tools/healthcheck/` (built and cached by its `build.sh`, like helm) then runs
kstatus' `status.Compute` (sigs.k8s.io/cli-utils, and Flux's fork of it) and Flux's CEL status
reader with the expressions shipped in `docs/gitops/flux/kustomizations.yaml`; the Argo CD
Lua runs under Lua 5.1. The verdicts are asserted here and must equal the table in
`docs/gitops/README.md`, so the documentation is a measurement, not a claim.
"""

from __future__ import annotations

import datetime
import json
import re
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

from edgewave_api import conditions as api_conditions
from edgewave_api import modelrollout
from edgewave_operator.devcluster import clusters
from edgewave_operator.planning import conditions, progress

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "docs" / "examples" / "modelrollout-multiregion.yaml"
KUSTOMIZATIONS = REPO / "docs" / "gitops" / "flux" / "kustomizations.yaml"
ARGOCD_LUA = REPO / "docs" / "gitops" / "argocd" / "edgewave.io" / "ModelRollout" / "health.lua"
README = REPO / "docs" / "gitops" / "README.md"
T0 = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
Phase = progress.Phase

# Tool (as named in the README table) -> state -> verdict.
EXPECTED: dict[str, dict[str, str]] = {
    "kstatus": {
        "created": "InProgress",
        "pending": "InProgress",
        "progressing": "InProgress",
        "paused": "InProgress",
        "ready": "Current",
        "stale generation": "InProgress",
        "rolling back": "InProgress",
        "rolled back": "Failed",
        "failed": "Failed",
        "no status at all": "Current",
    },
    "Flux healthCheckExprs": {
        "created": "InProgress",
        "pending": "InProgress",
        "progressing": "InProgress",
        "paused": "InProgress",
        "ready": "Current",
        "stale generation": "InProgress",
        "rolling back": "Failed",
        "rolled back": "Failed",
        "failed": "Failed",
        "no status at all": "Unknown",
    },
    "Argo CD": {
        "created": "Progressing",
        "pending": "Progressing",
        "progressing": "Progressing",
        "paused": "Suspended",
        "ready": "Healthy",
        "stale generation": "Progressing",
        "rolling back": "Degraded",
        "rolled back": "Degraded",
        "failed": "Degraded",
        "no status at all": "Progressing",
    },
}


@pytest.fixture(scope="module")
def probe() -> Path:
    built = subprocess.run(
        [str(REPO / "tools" / "healthcheck" / "build.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert built.returncode == 0, f"tools/healthcheck/build.sh failed:\n{built.stderr}"
    return Path(built.stdout.strip())


@pytest.fixture(scope="module")
def created(crds: clusters.DevCluster) -> Iterator[dict[str, Any]]:
    """The example rollout as the API server serves it before any operator wrote status."""
    namespace = "gitops-verdicts"
    crds.kubectl("create", "namespace", namespace)
    crds.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
    got = crds.kubectl("get", "-n", namespace, "-f", str(EXAMPLE), "-o", "json")
    yield json.loads(got.stdout)
    crds.kubectl("delete", "namespace", namespace, "--wait=false")


def _rollout(*, generation: int, status: modelrollout.ModelRolloutStatus | None) -> dict[str, Any]:
    document = yaml.safe_load(EXAMPLE.read_text())
    rollout = modelrollout.ModelRollout.model_validate(document)
    rollout.metadata.generation = generation
    rollout.metadata.namespace = "vision"
    rollout.status = status
    rendered: dict[str, Any] = rollout.model_dump(mode="json", by_alias=True, exclude_none=True)
    return rendered


def _status(
    *, observed: int, phase: progress.Phase, failure: progress.Failure | None = None
) -> modelrollout.ModelRolloutStatus:
    """A status as the operator writes it: its condition rule, set for generation `observed`."""
    current = progress.Progress(version="1.0.0", phase=phase, failure=failure)
    compiled = conditions.Condition(
        type=conditions.Type.COMPILED, status=conditions.Status.TRUE, reason="Compiled"
    )
    written: list[api_conditions.Condition] = []
    for condition in conditions.rollout_conditions(
        current=current, compiled=compiled, evictions=(), excluded=0
    ):
        written = api_conditions.set_condition(
            written,
            type=condition.type,
            status=api_conditions.ConditionStatus(condition.status.value),
            reason=condition.reason,
            message=condition.message,
            observed_generation=observed,
            now=T0,
        )
    return modelrollout.ModelRolloutStatus(
        observed_generation=observed,
        phase=modelrollout.RolloutPhase(phase.value),
        current_version="1.0.0",
        conditions=written,
    )


GATE_FAILED = progress.Failure(
    reason="LatencyTooHigh", message="wave eu-west p95 81ms > 50ms", at=T0, wave="eu-west"
)


def _states(created: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    states: dict[str, Callable[[], dict[str, Any]]] = {
        "created": lambda: dict(created),
        "pending": lambda: _rollout(generation=1, status=_status(observed=1, phase=Phase.PENDING)),
        "progressing": lambda: _rollout(
            generation=1, status=_status(observed=1, phase=Phase.PROGRESSING)
        ),
        "paused": lambda: _paused(
            _rollout(generation=1, status=_status(observed=1, phase=Phase.PAUSED))
        ),
        "ready": lambda: _rollout(generation=1, status=_status(observed=1, phase=Phase.SUCCEEDED)),
        "stale generation": lambda: _rollout(
            generation=2, status=_status(observed=1, phase=Phase.SUCCEEDED)
        ),
        "rolling back": lambda: _rollout(
            generation=1,
            status=_status(observed=1, phase=Phase.ROLLING_BACK, failure=GATE_FAILED),
        ),
        "rolled back": lambda: _rollout(
            generation=1,
            status=_status(observed=1, phase=Phase.ROLLED_BACK, failure=GATE_FAILED),
        ),
        "failed": lambda: _rollout(
            generation=1, status=_status(observed=1, phase=Phase.FAILED, failure=GATE_FAILED)
        ),
        # What a CRD without the `status` default (before this chart version) served.
        "no status at all": lambda: _rollout(generation=1, status=None),
    }
    return {name: build() for name, build in states.items()}


def _paused(rollout: dict[str, Any]) -> dict[str, Any]:
    rollout["spec"]["strategy"]["paused"] = True
    return rollout


def _flux_exprs() -> list[dict[str, str]]:
    for document in yaml.safe_load_all(KUSTOMIZATIONS.read_text()):
        if document and document["metadata"]["name"] == "edgewave-rollouts":
            exprs: list[dict[str, str]] = document["spec"]["healthCheckExprs"]
            return exprs
    raise AssertionError(f"no edgewave-rollouts Kustomization in {KUSTOMIZATIONS}")


def _argocd(obj: Mapping[str, Any]) -> str:
    """The Lua health check, run as Argo CD runs it: a Lua 5.1 chunk with the global `obj`."""
    lua = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    return str(lua.execute(ARGOCD_LUA.read_text())["status"])


def _measure(probe: Path, states: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    request = {
        "healthCheckExprs": _flux_exprs(),
        "objects": [{"name": name, "object": obj} for name, obj in states.items()],
    }
    ran = subprocess.run(
        [str(probe)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    return {entry["name"]: entry for entry in json.loads(ran.stdout)}


@pytest.fixture(scope="module")
def measured(probe: Path, created: dict[str, Any]) -> dict[str, dict[str, str]]:
    states = _states(created)
    results = _measure(probe, states)
    for name, entry in results.items():
        # Flux's fork of cli-utils must agree with upstream kstatus (Flux without expressions).
        assert entry["fluxKstatus"]["status"] == entry["kstatus"]["status"], (name, entry)
    return {
        "kstatus": {name: r["kstatus"]["status"] for name, r in results.items()},
        "Flux healthCheckExprs": {name: r["fluxCEL"]["status"] for name, r in results.items()},
        "Argo CD": {name: _argocd(obj) for name, obj in states.items()},
        "_errors": {name: r["fluxCEL"].get("error", "") for name, r in results.items()},
    }


def test_the_api_server_serves_observed_generation_0_before_the_operator_writes(
    created: dict[str, Any],
) -> None:
    # The CRD defaults `status` to {} and `observedGeneration` to 0: this closes the window in
    # which kstatus would call an unreconciled rollout Current, and gives CEL a `status`.
    assert created["metadata"]["generation"] == 1
    assert created["status"] == {"observedGeneration": 0}


@pytest.mark.parametrize("tool", sorted(EXPECTED))
def test_verdicts(tool: str, measured: dict[str, dict[str, str]]) -> None:
    assert measured[tool] == EXPECTED[tool]


def test_flux_expressions_never_error_on_a_status_the_api_server_serves(
    measured: dict[str, dict[str, str]],
) -> None:
    errors = {name: e for name, e in measured["_errors"].items() if e}
    # Only a status-less object errors: Flux parses without declared variables, so no CEL can
    # test for a missing `status`; the CRD's default is what guarantees one.
    assert set(errors) == {"no status at all"}
    assert "no such attribute" in errors["no status at all"]


def test_the_kstatus_rule_is_what_the_readme_says(measured: dict[str, dict[str, str]]) -> None:
    # InProgress until reconciled, Current when Ready at the current generation, Failed when
    # Stalled: the three sentences the documentation builds on.
    kstatus = measured["kstatus"]
    assert kstatus["created"] == kstatus["pending"] == "InProgress"
    assert kstatus["ready"] == "Current"
    assert kstatus["failed"] == kstatus["rolled back"] == "Failed"


def _readme_table() -> dict[str, dict[str, str]]:
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| Tool | Reads |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    table: dict[str, dict[str, str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        tool = re.sub(r"\s*\(.*\)$", "", cells[0])
        table[tool] = {
            state: cell.strip("*") for state, cell in zip(header[2:], cells[2:], strict=True)
        }
    return table


def test_the_readme_table_is_the_measurement(measured: dict[str, dict[str, str]]) -> None:
    table = _readme_table()
    for tool, verdicts in EXPECTED.items():
        assert table.get(tool) == {s: measured[tool][s] for s in verdicts}, tool
