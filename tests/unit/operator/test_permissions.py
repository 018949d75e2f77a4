"""The operator reads only the Secrets it owns, by name; the chart renders exactly that."""

from __future__ import annotations

import pytest

from edgewave_operator import settings
from edgewave_operator.kube import permissions
from tools import rbacgen


def _secret_rules(rules: tuple[dict[str, object], ...]) -> list[dict[str, object]]:
    return [rule for rule in rules if rule["resources"] == ["secrets"]]


def test_namespaced_secret_reads_are_limited_to_the_operators_own_secrets() -> None:
    rules = _secret_rules(permissions.NAMESPACE_RULES)
    readers = [rule for rule in rules if "get" in rule["verbs"]]  # type: ignore[operator]
    assert readers == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["edgewave-ca", "edgewave-signing-key"],
            "verbs": ["get"],
        }
    ]
    # `create` cannot be limited by name in Kubernetes: it must stand alone.
    assert [rule["verbs"] for rule in rules if "resourceNames" not in rule] == [["create"]]


def test_own_secret_names_are_the_settings_defaults() -> None:
    fields = settings.OperatorSettings.model_fields
    assert (
        fields["ca_secret"].default,
        fields["signing_secret"].default,
    ) == permissions.OWN_SECRETS


def test_the_chart_names_the_configured_secrets() -> None:
    text = rbacgen.render(permissions.CLUSTER_RULES, permissions.NAMESPACE_RULES)
    assert (
        'resourceNames: [{{ include "edgewave-operator.caSecretName" . | quote }},'
        ' {{ include "edgewave-operator.signingKeySecretName" . | quote }}'
        "{{ range .Values.rbac.tlsSecretNames }}, {{ . | quote }}{{ end }}]\n"
        '    verbs: ["get"]'
    ) in text
    assert 'verbs: ["get", "create"]' not in text


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        (
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["edgewave-ca"],
             "verbs": ["get", "create"]},
            "cannot",
        ),
        (
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["someone-elses"],
             "verbs": ["get"]},
            "does not configure",
        ),
    ],
)  # fmt: skip
def test_rules_the_chart_cannot_honour_are_refused(rule: dict[str, object], words: str) -> None:
    with pytest.raises(rbacgen.UnplaceableRuleError, match=words):
        rbacgen.render(permissions.CLUSTER_RULES, (rule,))
