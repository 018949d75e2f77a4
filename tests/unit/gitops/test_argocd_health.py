"""The Argo CD health check for ModelRollout, run as Argo CD runs it: Lua 5.1 with `obj` set.

Argo CD evaluates custom health checks with gopher-lua (Lua 5.1 semantics), so the script runs
here under lupa's Lua 5.1 against sample ModelRollouts, and the generated argocd-cm patch is
checked to embed the very same script.
"""

from __future__ import annotations

import copy
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
CASES_FILE = Path(__file__).with_name("modelrollout_health_cases.yaml")
ARGOCD_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(over)


def _cases() -> list[Any]:
    document = yaml.safe_load(CASES_FILE.read_text())
    return [
        pytest.param(_merge(document["base"], case["object"]), case, id=case["name"])
        for case in document["cases"]
    ]


def _health(obj: Mapping[str, Any]) -> dict[str, str]:
    """Run the health script the way Argo CD does: a chunk with the global `obj`."""
    script = (REPO / gitopsgen.LUA).read_text()
    lua = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script)
    return {str(key): str(value) for key, value in result.items()}


@pytest.mark.parametrize(("obj", "case"), _cases())
def test_health_matches_the_sample_status(obj: Mapping[str, Any], case: Mapping[str, str]) -> None:
    health = _health(obj)
    assert health["status"] == case["expect"], health
    assert health["status"] in ARGOCD_STATUSES
    assert health.get("message"), "Argo CD shows the message; it must say why"
    if "message" in case:
        assert case["message"] in health["message"]


@pytest.mark.parametrize(("obj", "case"), _cases())
def test_sample_is_a_valid_modelrollout(obj: Mapping[str, Any], case: Mapping[str, str]) -> None:
    # The samples are only worth testing against if the API would produce them: every field
    # must survive a round trip through the API model (nothing unknown, nothing mistyped).
    parsed = modelrollout.ModelRollout.model_validate(obj)
    assert parsed.model_dump(mode="json", by_alias=True, exclude_unset=True) == obj


def test_every_health_status_is_covered() -> None:
    expected = {case.values[1]["expect"] for case in _cases()}
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
    with pytest.raises(ValueError, match=r"argocd-health-modelrollout\.lua"):
        gitopsgen.render(lua)
