"""Test namespaces get valid, unique, readable names."""

from __future__ import annotations

import re

import pytest
import yaml

from edgewave_operator.devcluster import namespaces

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        ("test_apply", "t-test-apply-abc123"),
        ("test_case[ConfigMap-v1]", "t-test-case-configmap-v1-abc123"),
        ("___", "t-abc123"),
        ("", "t-abc123"),
        ("UPPER.case", "t-upper-case-abc123"),
    ],
)
def test_unique_name(hint: str, expected: str) -> None:
    assert namespaces.unique_name(hint, token="abc123") == expected


@pytest.mark.parametrize("hint", ["x" * 200, "a-" * 100, "test_" + "-" * 80 + "y"])
def test_long_hints_still_give_a_dns_label(hint: str) -> None:
    name = namespaces.unique_name(hint, token="ffffff")
    assert len(name) <= namespaces.MAX_LENGTH
    assert DNS_LABEL.match(name), name
    assert name.endswith("-ffffff")


def test_manifest_creates_namespace_and_its_default_service_account() -> None:
    namespace, account = yaml.safe_load_all(namespaces.manifest("t-x-1", labels={"a": "b"}))
    assert namespace["kind"] == "Namespace"
    assert namespace["metadata"] == {"name": "t-x-1", "labels": {"a": "b"}}
    assert account["kind"] == "ServiceAccount"
    assert account["metadata"] == {"name": "default", "namespace": "t-x-1"}
