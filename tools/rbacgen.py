"""Generates the operator chart's RBAC template from `edgewave_operator.kube.permissions`.

The permissions module is the one source of truth for what the operator may do: the
operator's integration test runs it under exactly those rules. The chart's
`templates/rbac.yaml` is rendered from the same rules here, so the two cannot drift
(`make verify` fails when they do). The chart only ever narrows a rule, never widens one:

- a cluster-wide `secrets` rule (EdgeAgent `spec.tlsSecretRef`, bring-your-own CA) becomes a
  Role in each namespace of `rbac.tlsSecretNamespaces`, instead of every Secret in the
  cluster, limited to `rbac.tlsSecretNames` when that is set; in the release namespace those
  names join the operator's own Secrets in the one by-name `get` rule;
- a namespaced rule naming the operator's own Secrets (`resourceNames`) gets the names the
  chart configures (`pki.caSecretName`, `pki.signingKeySecretName`);
- the `namespaces` rule is granted only with `watchNamespaces` (kopf needs it only then);
- `leases` rules are granted only with `leaderElection.enabled`, and every verb but
  `create` is limited to the operator's own Lease by name.

The one opt-in extra is `rbac.extraSecretNames`: update/patch on exactly those Secrets in
the release namespace (none by default; the operator itself never updates a Secret).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from edgewave_operator.kube import permissions

PATH = "charts/edgewave-operator/templates/rbac.yaml"
SOURCE = "operator/edgewave_operator/kube/permissions.py"

CORE = ""
# Verbs that cannot be limited by resourceNames: the object does not exist yet, or many are read.
_UNNAMEABLE = frozenset({"create", "list", "watch", "deletecollection"})
# The operator's own Secrets (permissions.OWN_SECRETS) -> the chart helper naming each.
_SECRET_HELPERS = {
    "edgewave-ca": "edgewave-operator.caSecretName",
    "edgewave-signing-key": "edgewave-operator.signingKeySecretName",
}


class UnplaceableRuleError(ValueError):
    """A permissions rule the chart cannot place; split it in the permissions module."""


def _flow(items: Iterable[str]) -> str:
    """A YAML flow sequence (JSON is valid YAML, and quotes "" for the core group)."""
    return json.dumps(list(items))


def _rule(rule: Mapping[str, Any], *, indent: int = 2, names: str | None = None) -> str:
    pad = " " * indent
    lines = [
        f"{pad}- apiGroups: {_flow(rule['apiGroups'])}",
        f"{pad}  resources: {_flow(rule['resources'])}",
    ]
    if names is not None:
        lines.append(f"{pad}  resourceNames: [{names}]")
    lines.append(f"{pad}  verbs: {_flow(rule['verbs'])}")
    return "\n".join(lines) + "\n"


def _is(rule: Mapping[str, Any], *, group: str, resource: str) -> bool:
    """Whether `rule` is about `resource` in `group` (and, if so, only about it)."""
    if group not in rule["apiGroups"] or resource not in rule["resources"]:
        return False
    if list(rule["apiGroups"]) != [group] or list(rule["resources"]) != [resource]:
        raise UnplaceableRuleError(
            f"rule {dict(rule)} mixes {group or 'core'}/{resource} with other resources; "
            f"give {resource} its own rule in {SOURCE}"
        )
    return True


def _when(condition: str, body: str) -> str:
    return f"  {{{{- if {condition} }}}}\n{body}  {{{{- end }}}}\n"


def _agent_tls_rule(rule: Mapping[str, Any]) -> str:
    """The agent-TLS rule, limited to `rbac.tlsSecretNames` when that is set."""
    group, resources, verbs = _rule(rule).splitlines(keepends=True)
    names = (
        "    {{- with $.Values.rbac.tlsSecretNames }}\n"
        "    resourceNames: {{ toJson . }}\n"
        "    {{- end }}\n"
    )
    return group + resources + names + verbs


def _cluster_rules(rules: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(ClusterRole rules, rules for each rbac.tlsSecretNamespaces Role)."""
    cluster, agent_tls = "", ""
    for rule in rules:
        if _is(rule, group=CORE, resource="secrets"):
            agent_tls += _agent_tls_rule(rule)
        elif _is(rule, group=CORE, resource="namespaces"):
            cluster += _when(".Values.watchNamespaces", _rule(rule))
        else:
            cluster += _rule(rule)
    return cluster, agent_tls


def _named_secrets(rule: Mapping[str, Any]) -> str:
    """The chart's names for the Secrets a rule names (the permissions module's defaults)."""
    unnameable = sorted(set(rule["verbs"]) & _UNNAMEABLE)
    if unnameable:
        raise UnplaceableRuleError(
            f"rule {dict(rule)} limits {unnameable} by resourceNames, which Kubernetes cannot"
            f" do; give those verbs their own rule in {SOURCE}"
        )
    names = []
    for name in rule["resourceNames"]:
        helper = _SECRET_HELPERS.get(name)
        if helper is None:
            raise UnplaceableRuleError(
                f"rule {dict(rule)} names Secret {name!r}, which the chart does not configure;"
                f" known: {sorted(_SECRET_HELPERS)}"
            )
        names.append(f'{{{{ include "{helper}" . | quote }}}}')
    # EdgeAgent spec.tlsSecretRef Secrets kept in the release namespace, named in values.
    agent_tls = "{{ range .Values.rbac.tlsSecretNames }}, {{ . | quote }}{{ end }}"
    return ", ".join(names) + agent_tls


def _namespace_rules(rules: Sequence[Mapping[str, Any]]) -> str:
    """Rules of the Role in the release namespace."""
    out = ""
    for rule in rules:
        if rule.get("resourceNames") and _is(rule, group=CORE, resource="secrets"):
            out += _rule(rule, names=_named_secrets(rule))
            continue
        if rule.get("resourceNames"):
            raise UnplaceableRuleError(f"rule {dict(rule)}: the chart names only Secrets")
        if not _is(rule, group="coordination.k8s.io", resource="leases"):
            out += _rule(rule)
            continue
        unnamed = [verb for verb in rule["verbs"] if verb in _UNNAMEABLE]
        named = [verb for verb in rule["verbs"] if verb not in _UNNAMEABLE]
        body = _rule({**rule, "verbs": unnamed}) if unnamed else ""
        if named:
            lease = '{{ include "edgewave-operator.leaseName" . | quote }}'
            body += _rule({**rule, "verbs": named}, names=lease)
        out += _when(".Values.leaderElection.enabled", body)
    return out


_TEMPLATE = """\
{{{{- /*
Generated by tools/rbacgen.py from {source};
edit that module and run `make generate`. Least privilege: exactly the rules the operator
(and its admission webhook) is tested under, narrowed where the chart knows more.
*/}}}}
{{{{- if .Values.rbac.create }}}}
{{{{- $fullname := include "edgewave-operator.fullname" . }}}}
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{{{ $fullname }}}}
  labels:
    {{{{- include "edgewave-operator.labels" . | nindent 4 }}}}
rules:
{cluster}---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{{{ $fullname }}}}
  labels:
    {{{{- include "edgewave-operator.labels" . | nindent 4 }}}}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{{{ $fullname }}}}
subjects:
  - kind: ServiceAccount
    name: {{{{ include "edgewave-operator.serviceAccountName" . }}}}
    namespace: {{{{ .Release.Namespace }}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{{{ $fullname }}}}
  namespace: {{{{ .Release.Namespace }}}}
  labels:
    {{{{- include "edgewave-operator.labels" . | nindent 4 }}}}
rules:
{namespaced}  {{{{- with .Values.rbac.extraSecretNames }}}}
  # Opt-in extra (rbac.extraSecretNames): update these Secrets, by name only.
  - apiGroups: [""]
    resources: ["secrets"]
    resourceNames: {{{{ toJson . }}}}
    verbs: ["update", "patch"]
  {{{{- end }}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{{{ $fullname }}}}
  namespace: {{{{ .Release.Namespace }}}}
  labels:
    {{{{- include "edgewave-operator.labels" . | nindent 4 }}}}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{{{ $fullname }}}}
subjects:
  - kind: ServiceAccount
    name: {{{{ include "edgewave-operator.serviceAccountName" . }}}}
    namespace: {{{{ .Release.Namespace }}}}
{{{{- range .Values.rbac.tlsSecretNamespaces }}}}
---
# EdgeAgent `spec.tlsSecretRef` Secrets kept in namespace {{{{ . }}}}.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{{{ $fullname }}}}-agent-tls
  namespace: {{{{ . }}}}
  labels:
    {{{{- include "edgewave-operator.labels" $ | nindent 4 }}}}
rules:
{agent_tls}---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{{{ $fullname }}}}-agent-tls
  namespace: {{{{ . }}}}
  labels:
    {{{{- include "edgewave-operator.labels" $ | nindent 4 }}}}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{{{ $fullname }}}}-agent-tls
subjects:
  - kind: ServiceAccount
    name: {{{{ include "edgewave-operator.serviceAccountName" $ }}}}
    namespace: {{{{ $.Release.Namespace }}}}
{{{{- end }}}}
{{{{- end }}}}
"""


def render(
    cluster_rules: Sequence[Mapping[str, Any]], namespace_rules: Sequence[Mapping[str, Any]]
) -> str:
    """The chart's RBAC template granting `cluster_rules` and `namespace_rules` (narrowed)."""
    cluster, agent_tls = _cluster_rules(cluster_rules)
    if not agent_tls:
        raise UnplaceableRuleError(f"no cluster-wide secrets rule in {SOURCE} for agent TLS")
    return _TEMPLATE.format(
        source=SOURCE,
        cluster=cluster,
        namespaced=_namespace_rules(namespace_rules),
        agent_tls=agent_tls,
    )


def generate() -> dict[str, str]:
    """{repo-relative path: content} of the operator chart's RBAC template."""
    return {PATH: render(permissions.CLUSTER_RULES, permissions.NAMESPACE_RULES)}
