"""Apply one lifecycle action to a rollout in the API server: read, decide, patch once.

The patch carries the `resourceVersion` it was decided on, so a rollout that changed in
between (the operator wrote it, someone else paused it) is a conflict: it is read again and
decided again, a bounded number of times. Errors are the classified ones of
`kube.failures`; a missing rollout is a `NotApplicable` naming it.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client

from edgewave_api import meta, modelrollout
from edgewave_operator.kube import failures, patching
from edgewave_operator.lifecycle import actions

ATTEMPTS = 3
_PLURAL = modelrollout.ModelRollout.crd.plural
_MERGE: dict[str, Any] = {"_content_type": patching.MERGE_PATCH}


async def _read(
    objects: client.CustomObjectsApi, *, name: str, namespace: str
) -> modelrollout.ModelRollout:
    try:
        body: dict[str, Any] = await failures.call(
            objects.get_namespaced_custom_object(
                meta.GROUP, meta.VERSION, namespace, _PLURAL, name
            ),
            doing=f"reading modelrollout {namespace}/{name}",
        )
    except failures.NotFound:
        raise actions.NotApplicable(
            f'modelrollout "{name}" not found in namespace "{namespace}"'
        ) from None
    return modelrollout.ModelRollout.model_validate(body)


async def apply(
    api: client.ApiClient, *, action: actions.Action, name: str, namespace: str
) -> actions.Change:
    """Apply `action` to the ModelRollout `namespace/name`; the change made.

    Raises `actions.NotApplicable` when it cannot apply, and the classified API errors.
    """
    objects = client.CustomObjectsApi(api)
    for attempt in range(ATTEMPTS):
        rollout = await _read(objects, name=name, namespace=namespace)
        change = actions.decide(action, rollout)
        patch = {
            **change.patch,
            "metadata": {"resourceVersion": rollout.metadata.resource_version},
        }
        try:
            await failures.call(
                objects.patch_namespaced_custom_object(
                    meta.GROUP,
                    meta.VERSION,
                    namespace,
                    _PLURAL,
                    name,
                    patch,
                    **_MERGE,
                ),
                doing=f"{action.value} modelrollout {namespace}/{name}",
            )
        except failures.Conflict:
            if attempt == ATTEMPTS - 1:
                raise
            continue
        return change
    raise AssertionError("unreachable")
