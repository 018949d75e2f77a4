"""The CLI's cluster reads: which namespace by default, and API errors as one actionable line."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes_asyncio.client.exceptions import ApiException
from multidict import CIMultiDict, CIMultiDictProxy

from edgewave_api import kubeyaml
from edgewave_operator import reading


def _kubeconfig(tmp_path: Path, *, namespace: str | None) -> Path:
    context: dict[str, str] = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    path = tmp_path / "kubeconfig"
    path.write_text(
        kubeyaml.dump(
            {
                "current-context": "dev",
                "contexts": [
                    {"name": "other", "context": {"namespace": "nope"}},
                    {"name": "dev", "context": context},
                ],
            }
        )
    )
    return path


def test_the_default_namespace_is_the_current_contexts(tmp_path: Path) -> None:
    assert reading.default_namespace(_kubeconfig(tmp_path, namespace="team-a")) == "team-a"


def test_without_one_it_is_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert reading.default_namespace(_kubeconfig(tmp_path, namespace=None)) == "default"
    assert reading.default_namespace(tmp_path / "missing") == "default"
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert reading.default_namespace(None) == "default"


def test_the_kubeconfig_variable_is_read_when_no_file_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, namespace="from-env")))
    assert reading.default_namespace(None) == "from-env"


def _error(status: int, body: str = "", headers: dict[str, str] | None = None) -> ApiException:
    error = ApiException(status=status, reason="Reason")
    error.body = body.encode()
    error.headers = CIMultiDictProxy(CIMultiDict(headers or {}))
    return error


@pytest.mark.parametrize(
    ("error", "temporary", "message"),
    [
        (
            _error(404, "the server could not find the requested resource"),
            False,
            "CRDs are not installed",
        ),
        (_error(403), False, "check your kubeconfig's credentials and RBAC"),
        (_error(429), True, "answered 429"),
        (_error(503), True, "answered 503"),
    ],
)
def test_api_errors_are_classified_with_what_to_do(
    error: ApiException, temporary: bool, message: str
) -> None:
    classified = reading._classify(error, doing="listing edgeagents")
    assert classified.temporary is temporary
    assert message in str(classified)
    assert str(classified).startswith("listing edgeagents: ")


@pytest.mark.parametrize(
    ("headers", "seconds"), [({"Retry-After": "1"}, 1.0), ({}, 0.5), ({"Retry-After": "soon"}, 0.5)]
)
def test_retry_after_follows_the_server(headers: dict[str, str], seconds: float) -> None:
    assert reading._retry_after(_error(429, headers=headers)) == seconds
