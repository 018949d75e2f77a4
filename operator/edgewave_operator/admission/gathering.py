"""What a residency decision needs from the API server: policies, and where agents are.

Read live at each decision, not from a watch cache: a policy created a moment before a
rollout must already bind it, and a cache that is still filling after a restart must
not let a rollout through unchecked. Admission is rare (people and GitOps applying
specs), so a list call per decision is cheap. Errors arrive classified (`kube.failures`).
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client

from edgewave_api import edgeagent, meta, residencypolicy
from edgewave_operator.admission import ownership, rules
from edgewave_operator.kube import failures

POLICIES = "residencypolicies"
ROLLOUTS = "modelrollouts"
AGENTS = "edgeagents"


async def _list(api: client.ApiClient, plural: str) -> list[dict[str, Any]]:
    response = await failures.call(
        client.CustomObjectsApi(api).list_cluster_custom_object(meta.GROUP, meta.VERSION, plural),
        doing=f"listing {plural}",
    )
    items: list[dict[str, Any]] = response.get("items", [])
    return items


async def policies(api: client.ApiClient) -> list[residencypolicy.ResidencyPolicy]:
    """Every ResidencyPolicy in the cluster, parsed (a policy that does not parse raises)."""
    return [
        residencypolicy.ResidencyPolicy.model_validate(item) for item in await _list(api, POLICIES)
    ]


async def agents(api: client.ApiClient) -> list[edgeagent.EdgeAgent]:
    """Every EdgeAgent in the cluster, parsed with its status."""
    return [edgeagent.EdgeAgent.model_validate(item) for item in await _list(api, AGENTS)]


async def jurisdictions(api: client.ApiClient) -> dict[str, frozenset[str]]:
    """Region -> the jurisdictions its EdgeAgents declare (only their specs are parsed)."""
    pairs = []
    for item in await _list(api, AGENTS):
        spec = edgeagent.EdgeAgentSpec.model_validate(item.get("spec") or {})
        pairs.append((spec.region, spec.jurisdiction))
    return rules.jurisdictions_by_region(pairs)


async def claims(api: client.ApiClient) -> list[ownership.Claim]:
    """Every ModelRollout's claim on a model name, in every namespace."""
    found = (ownership.claim_of(item) for item in await _list(api, ROLLOUTS))
    return [claim for claim in found if claim is not None]
