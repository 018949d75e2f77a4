"""Send one request to a rollout and wait for the operator's answer: the one way every
client (the `edgewave rollout` commands, the dashboard) acts on a rollout.

`send` reads the rollout, asks `planning.lifecycle.refusal` whether the request can apply
(so a request that cannot is refused at once, in the same words the operator would use),
writes the annotation `edgewave.io/request` (a merge patch of `metadata` only, guarded by
the `resourceVersion` it read, so a concurrent change is read again rather than
overwritten), then polls the status until `status.control.lastRequest` carries its
nonce. Nothing here changes `spec`. Every wait is bounded by `wait_seconds`.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client

from edgewave_api import controls, meta, modelrollout
from edgewave_api.errors import PermanentError, TemporaryError
from edgewave_operator.kube import failures
from edgewave_operator.lifecycle import actions
from edgewave_operator.planning import lifecycle, parsing

POLL_SECONDS = 0.5
_MERGE: dict[str, Any] = {"_content_type": "application/merge-patch+json"}
ATTEMPTS = 5
"""Reads-and-writes tried when the object keeps changing under us."""


class Refused(actions.NotApplicable):
    """The request cannot apply to the rollout as it stands."""


class Unanswered(TemporaryError):
    """The operator did not answer within the timeout (the request stays queued)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the operator answered, and the phase before and after."""

    rollout: str
    action: controls.Action
    message: str
    phase_before: str
    phase_after: str

    def line(self) -> str:
        phases = (
            f"{self.phase_before} -> {self.phase_after}"
            if self.phase_before != self.phase_after
            else self.phase_after
        )
        return f"rollout {self.rollout}: {self.message} (phase {phases})"


async def send(
    api: client.ApiClient,
    *,
    namespace: str,
    name: str,
    action: controls.Action,
    full: bool = False,
    to_version: str | None = None,
    wait_seconds: float = 60.0,
    clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
) -> Outcome:
    """Ask the operator to carry out `action` on `namespace/name`; its answer.

    Raises `Refused` (cannot apply: why, in one line), `Unanswered` (no answer within
    `wait_seconds`) or the classified API errors of `kube.failures`.
    """
    key = f"{namespace}/{name}"
    for _ in range(ATTEMPTS):
        body = await _read(api, namespace=namespace, name=name)
        rollout = modelrollout.ModelRollout.model_validate(body)
        request = controls.Request(
            action=action,
            nonce=uuid.uuid4().hex,
            generation=rollout.metadata.generation or 0,
            full=full,
            to_version=to_version,
        )
        current = parsing.progress_of(rollout.status, now=clock())
        why = lifecycle.refusal(
            request,
            current=current,
            generation=request.generation,
            spec_paused=rollout.spec.strategy.paused,
        )
        if why is not None:
            raise Refused(f"cannot {action} rollout {key}: {why}")
        try:
            await _annotate(api, rollout=rollout, value=controls.render(request))
        except failures.Conflict:
            continue
        before = rollout.status.phase.value if rollout.status and rollout.status.phase else "-"
        return await _answer(
            api, rollout=rollout, request=request, before=before, wait_seconds=wait_seconds, key=key
        )
    raise TemporaryError(f"rollout {key} kept changing while the request was written; try again")


async def _read(api: client.ApiClient, *, namespace: str, name: str) -> dict[str, Any]:
    objects = client.CustomObjectsApi(api)
    try:
        body: dict[str, Any] = await failures.call(
            objects.get_namespaced_custom_object(
                meta.GROUP, meta.VERSION, namespace, modelrollout.ModelRollout.crd.plural, name
            ),
            doing=f"reading modelrollout {namespace}/{name}",
        )
    except failures.NotFound:
        raise PermanentError(
            f'modelrollout "{name}" not found in namespace "{namespace}" '
            f"(list them with `kubectl get modelrollouts -n {namespace}`)"
        ) from None
    return body


async def _annotate(
    api: client.ApiClient, *, rollout: modelrollout.ModelRollout, value: str
) -> None:
    objects = client.CustomObjectsApi(api)
    namespace, name = rollout.metadata.namespace or "", rollout.metadata.name or ""
    patch = {
        "metadata": {
            "resourceVersion": rollout.metadata.resource_version,
            "annotations": {controls.ANNOTATION: value},
        }
    }
    await failures.call(
        objects.patch_namespaced_custom_object(
            meta.GROUP, meta.VERSION, namespace, modelrollout.ModelRollout.crd.plural, name,
            patch, **_MERGE,
        ),
        doing=f"writing the request on modelrollout {namespace}/{name}",
    )  # fmt: skip


async def _answer(
    api: client.ApiClient,
    *,
    rollout: modelrollout.ModelRollout,
    request: controls.Request,
    before: str,
    wait_seconds: float,
    key: str,
) -> Outcome:
    namespace, name = rollout.metadata.namespace or "", rollout.metadata.name or ""
    for _ in range(max(1, int(wait_seconds / POLL_SECONDS))):
        await asyncio.sleep(POLL_SECONDS)
        seen = modelrollout.ModelRollout.model_validate(
            await _read(api, namespace=namespace, name=name)
        )
        status = seen.status
        answer = status.control.last_request if status and status.control else None
        if answer is None or answer.nonce != request.nonce:
            continue
        if answer.result is modelrollout.RequestResult.REFUSED:
            raise Refused(f"cannot {request.action} rollout {key}: {answer.message}")
        after = status.phase.value if status and status.phase else "-"
        return Outcome(
            rollout=key,
            action=request.action,
            message=answer.message,
            phase_before=before,
            phase_after=after,
        )
    raise Unanswered(
        f"the operator did not answer the {request.action} request on rollout {key} within "
        f"{wait_seconds:g} s; it stays in annotation {controls.ANNOTATION} and applies when the "
        "operator runs (is it running? `kubectl get lease edgewave-operator`)"
    )
