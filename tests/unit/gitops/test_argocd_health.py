"""The Argo CD health check for ModelRollout, run as Argo CD runs it: Lua 5.1 with `obj` set.

Argo CD evaluates custom health checks with gopher-lua (Lua 5.1 semantics), so the script runs
here under lupa's Lua 5.1 against the samples in Argo CD's own test format
(`health_test.yaml` and `testdata/` beside `health.lua`, the layout of argo-cd's
`resource_customizations/edgewave.io/ModelRollout/`, so the directory can be contributed as it
is), and the generated argocd-cm patch is checked to embed the very same script.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

from edgewave_api import modelrollout

REPO = Path(__file__).resolve().parents[3]


def _load_generator() -> Any:
    # tools/ is run as `python -m tools.generate` from the repo root, not installed.
    spec = importlib.util.spec_from_file_location("gitopsgen", REPO / "tools" / "gitopsgen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gitopsgen = _load_generator()
CHECK = (REPO / gitopsgen.LUA).parent
ARGOCD_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def _cases() -> list[Any]:
    """Argo CD's own test format (`health_test.yaml` + `testdata/`), as upstream runs it."""
    document = yaml.safe_load((CHECK / "health_test.yaml").read_text())
    return [
        pytest.param(
            yaml.safe_load((CHECK / case["inputPath"]).read_text()),
            case["healthStatus"],
            id=case["inputPath"].removeprefix("testdata/").removesuffix(".yaml"),
        )
        for case in document["tests"]
    ]


def _health(obj: Mapping[str, Any]) -> dict[str, str]:
    """Run the health script the way Argo CD does: a chunk with the global `obj`."""
    script = (REPO / gitopsgen.LUA).read_text()
    lua = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script)
    return {str(key): str(value) for key, value in result.items()}


@pytest.mark.parametrize(("obj", "expected"), _cases())
def test_health_matches_health_test_yaml(
    obj: Mapping[str, Any], expected: Mapping[str, str]
) -> None:
    # Argo CD's resource_customizations test compares status and message exactly.
    health = _health(obj)
    assert health == dict(expected)
    assert health["status"] in ARGOCD_STATUSES
    assert health["message"], "Argo CD shows the message; it must say why"


@pytest.mark.parametrize(("obj", "expected"), _cases())
def test_sample_is_a_valid_modelrollout(
    obj: Mapping[str, Any], expected: Mapping[str, str]
) -> None:
    # The samples are only worth testing against if the API would produce them: every field
    # must survive a round trip through the API model (nothing unknown, nothing mistyped).
    parsed = modelrollout.ModelRollout.model_validate(obj)
    assert parsed.model_dump(mode="json", by_alias=True, exclude_unset=True) == obj


def test_every_testdata_file_is_a_test() -> None:
    listed = {
        case["inputPath"]
        for case in yaml.safe_load((CHECK / "health_test.yaml").read_text())["tests"]
    }
    present = {f"testdata/{p.name}" for p in (CHECK / "testdata").glob("*.yaml")}
    assert listed == present


def test_every_health_status_is_covered() -> None:
    expected = {case.values[1]["status"] for case in _cases()}
    assert expected == {"Healthy", "Progressing", "Degraded", "Suspended"}


def test_argocd_cm_patch_embeds_the_script_verbatim() -> None:
    patch = yaml.safe_load((REPO / gitopsgen.PATCH).read_text())
    assert patch["kind"] == "ConfigMap"
    assert patch["metadata"] == {
        "name": "argocd-cm",
        "namespace": "argocd",
        "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
    }
    assert patch["data"] == {gitopsgen.HEALTH_KEY: (REPO / gitopsgen.LUA).read_text()}


@pytest.mark.parametrize(
    "lua",
    ["  indented = true\n", "hs = {}\n\n", "hs = {}", "hs = {} \nreturn hs\n"],
    ids=["leading-indent", "two-final-newlines", "no-final-newline", "trailing-space"],
)
def test_render_refuses_what_yaml_would_change(lua: str) -> None:
    with pytest.raises(ValueError, match=r"ModelRollout/health\.lua"):
        gitopsgen.render(lua)
