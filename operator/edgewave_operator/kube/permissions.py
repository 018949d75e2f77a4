"""The Kubernetes API access the operator needs, and nothing more (least privilege).

Data, not code that calls the API: the Helm chart's RBAC is generated from these rules
(tools/rbacgen.py; `make verify` fails on drift), and an integration test runs the real
operator under a ServiceAccount bound to exactly these rules, so a missing permission
fails a test instead of a rollout in production.

Cluster-wide: read the three kinds; write only status (all three kinds) and the
metadata kopf needs on ModelRollouts (its finalizer and annotations, by PATCH; the
operator never edits a spec); create Events; read the TLS Secrets EdgeAgents name for
bring-your-own CAs. In its own namespace: create Secrets and read its CA and signing-key
Secrets by name (`resourceNames`), and hold the leader Lease.
"""

from __future__ import annotations

from typing import Any

GROUP = "edgewave.io"

CLUSTER_RULES: tuple[dict[str, Any], ...] = (
    {
        "apiGroups": [GROUP],
        "resources": ["modelrollouts"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {"apiGroups": [GROUP], "resources": ["modelrollouts/status"], "verbs": ["patch"]},
    {"apiGroups": [GROUP], "resources": ["edgeagents"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [GROUP], "resources": ["edgeagents/status"], "verbs": ["patch"]},
    {"apiGroups": [GROUP], "resources": ["residencypolicies"], "verbs": ["get", "list", "watch"]},
    # The operator reports each policy's effect (e.g. agents it excludes) in its status.
    {"apiGroups": [GROUP], "resources": ["residencypolicies/status"], "verbs": ["patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    # EdgeAgent.spec.tlsSecretRef (bring-your-own CA) may name a Secret in any namespace;
    # narrow this to a Role in the namespaces that hold them where you can.
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
    # kopf watches CRDs to notice its resources appear or change (discovery).
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["list", "watch"],
    },
    # Only with EDGEWAVE_WATCH_NAMESPACES: kopf watches which of them exist.
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
)
"""ClusterRole rules (every namespace the operator serves)."""

OWN_SECRETS: tuple[str, ...] = ("edgewave-ca", "edgewave-signing-key")
"""The operator's own Secrets under their default names (settings `ca_secret`,
`signing_secret`); the chart substitutes the names it configures."""

NAMESPACE_RULES: tuple[dict[str, Any], ...] = (
    # Kubernetes cannot limit `create` by name (the object does not exist yet), so create is
    # its own rule; reads are limited to the two Secrets the operator owns. A token stolen
    # from the operator's pod therefore reads its CA and signing key, and no other Secret.
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
    {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": list(OWN_SECRETS),
        "verbs": ["get"],
    },
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "create", "update"],
    },
)
"""Role rules in the operator's own namespace (its Secrets and the leader Lease)."""
