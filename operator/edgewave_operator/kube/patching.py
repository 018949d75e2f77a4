"""Status writes of Edgewave objects as JSON merge patches on the status subresource.

Callers pass the whole rendered status; keys that vanished since the last write (nested
ones too) are sent as null so the merge patch removes them. Nothing here decides whether
to write: callers compare with what they last wrote and call only on a difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client

from edgewave_api import meta
from edgewave_operator.kube import failures

MERGE_PATCH = "application/merge-patch+json"
_MERGE: dict[str, Any] = {"_content_type": MERGE_PATCH}


def merge_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """`new`, plus explicit nulls for keys of `old` that `new` lacks, at every depth of
    nested objects (a merge patch merges objects: a key left out would stay)."""
    patch: dict[str, Any] = dict(new)
    for key, before in (old or {}).items():
        if key not in new:
            patch[key] = None
        elif isinstance(before, Mapping) and isinstance(new[key], Mapping):
            patch[key] = merge_patch(before, new[key])
    return patch


async def patch_status(
    api: client.ApiClient,
    *,
    plural: str,
    name: str,
    namespace: str | None,
    status: Mapping[str, Any],
) -> dict[str, Any]:
    """Merge-patch `status` into the object's status subresource; the object written."""
    objects = client.CustomObjectsApi(api)
    body = {"status": dict(status)}
    what = f"writing the status of {plural}/{name}"
    if namespace is None:
        result = await failures.call(
            objects.patch_cluster_custom_object_status(
                meta.GROUP, meta.VERSION, plural, name, body, **_MERGE
            ),
            doing=what,
        )
    else:
        result = await failures.call(
            objects.patch_namespaced_custom_object_status(
                meta.GROUP, meta.VERSION, namespace, plural, name, body, **_MERGE
            ),
            doing=what,
        )
    return dict(result)
