"""The kopf handlers, registered when this module is imported.

- EdgeAgents: a kopf index (`fleet`: name -> EdgeAgent) that rollouts read instead of the
  API server, and an event handler that keeps the inventory's probe list current. No
  handler that writes kopf state to EdgeAgents (no finalizer, no annotations): agent
  objects are written only by the inventory, and only when something changed.
- ResidencyPolicies: an index (`policies`); any change wakes every rollout and the
  policies' status writer (`handlers.policies`), which also hears of every rollout.
- ModelRollouts: one daemon each (the `RolloutWorker` loop), an event handler that wakes
  it on spec changes, and a deletion handler (finalizer) that removes the model from the
  agents unless the keep annotation says otherwise, and releases cache references.

They live in their own registry (`REGISTRY`), run by a kopf operator that only the leader
starts; what every replica serves (health, admission) is in `handlers.serving`.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from edgewave_api import edgeagent, meta, residencypolicy
from edgewave_api.errors import EdgewaveError
from edgewave_operator.agents import acting
from edgewave_operator.handlers import daemons
from edgewave_operator.handlers.rollouts import RolloutWorker
from edgewave_operator.handlers.runtime import Runtime
from edgewave_operator.kube import events
from edgewave_operator.planning import ownership, reconciling, unreadable

log = logging.getLogger(__name__)

GROUP, VERSION = meta.GROUP, meta.VERSION
FINALIZER = "edgewave.io/cleanup"
DELETE_RETRIES = 6
REGISTRY = kopf.OperatorRegistry()
"""The reconciling handlers, run by the leader's kopf only."""


def _runtime(memo: Any) -> Runtime:
    runtime: Runtime = memo.runtime
    return runtime


@kopf.on.login(registry=REGISTRY)
async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The same credentials as the operator's own client (a registry of our own has no
    default login handlers)."""
    return await kopf.login_via_async_client(**kwargs)


@kopf.on.startup(registry=REGISTRY)
async def configure(*, settings: kopf.OperatorSettings, **_: Any) -> None:
    # Events are posted by the operator itself, on transitions only (kube.events).
    settings.posting.enabled = False
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="edgewave.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="edgewave.io", key="last-handled-configuration"
    )
    settings.watching.connect_timeout = 10
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    # kopf waits for its idle per-object workers when stopping; keep that short.
    settings.batching.idle_timeout = 1.0


@kopf.on.cleanup(registry=REGISTRY)
async def stop_probing(*, memo: Any, **_: Any) -> None:
    """Stop probing and release kopf's stop-flag waiter: nothing left for kopf to wait for.

    kopf handles SIGTERM itself; without this, its waiter on the operator's own stop flag
    (leadership loss) would hold up every shutdown by kopf's 5 s grace period.
    """
    runtime = _runtime(memo)
    runtime.stopping.set()
    await runtime.close_tasks()


# -- EdgeAgents ----------------------------------------------------------------------------


@kopf.index(GROUP, VERSION, "edgeagents", registry=REGISTRY)
async def fleet(*, name: str, body: kopf.Body, **_: Any) -> dict[str, edgeagent.EdgeAgent]:
    try:
        return {name: edgeagent.EdgeAgent.model_validate(dict(body))}
    except ValidationError as error:
        log.warning("EdgeAgent %s ignored: %s", name, error)
        return {}


@kopf.on.event(GROUP, VERSION, "edgeagents", registry=REGISTRY)
async def agent_changed(*, type: str, name: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    inventory = _runtime(memo).inventory
    if type == "DELETED":
        inventory.forget(name)
        return
    try:
        inventory.upsert(edgeagent.EdgeAgent.model_validate(dict(body)))
    except ValidationError as error:
        log.warning("EdgeAgent %s ignored: %s", name, error)


# -- ResidencyPolicies -----------------------------------------------------------------------


@kopf.index(GROUP, VERSION, "residencypolicies", registry=REGISTRY)
async def policies(
    *, name: str, body: kopf.Body, **_: Any
) -> dict[str, residencypolicy.ResidencyPolicy | unreadable.UnreadablePolicy]:
    # An unreadable policy is kept (not ignored): planning fails closed on it.
    found = unreadable.read(name, body)
    if isinstance(found, unreadable.UnreadablePolicy):
        log.warning("ResidencyPolicy %s cannot be parsed: %s", name, found.error)
    return {name: found}


@kopf.on.event(GROUP, VERSION, "residencypolicies", registry=REGISTRY)
async def policy_changed(*, type: str, name: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    runtime = _runtime(memo)
    runtime.policy_statuses.policy_event(kind=type, name=name, body=body)
    runtime.wake_all()


# -- ModelRollouts ---------------------------------------------------------------------------


@kopf.on.event(GROUP, VERSION, "modelrollouts", registry=REGISTRY)
async def rollout_changed(*, type: str, uid: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    runtime = _runtime(memo)
    runtime.policy_statuses.rollout_event(kind=type, uid=uid, body=body)
    runtime.wake(uid)


@kopf.daemon(
    GROUP, VERSION, "modelrollouts", registry=REGISTRY, cancellation_timeout=30.0, backoff=5.0
)
async def rollout(
    *,
    body: kopf.Body,
    uid: str,
    name: str,
    namespace: str | None,
    stopped: kopf.DaemonStopped,
    memo: Any,
    **kwargs: Any,
) -> None:
    # `fleet` and `policies` are the kopf indices above, passed by name.
    worker = RolloutWorker(_runtime(memo), uid=uid, name=name, namespace=namespace or "")
    await worker.run(
        body=body, stopped=stopped, agents=kwargs["fleet"], policies=kwargs["policies"]
    )


@kopf.on.delete(GROUP, VERSION, "modelrollouts", registry=REGISTRY)
async def rollout_deleted(
    *,
    body: kopf.Body,
    uid: str,
    name: str,
    namespace: str | None,
    memo: Any,
    retry: int,
    **kwargs: Any,
) -> None:
    runtime = _runtime(memo)
    fleet = kwargs["fleet"]
    settings = runtime.settings
    annotations = body.get("metadata", {}).get("annotations", {}) or {}
    model = str(body.get("spec", {}).get("model", {}).get("name", ""))
    ref = events.ObjectRef(kind="ModelRollout", name=name, namespace=namespace, uid=uid)
    keep = str(annotations.get(settings.keep_models_annotation, "")).lower() == "true"
    problems: dict[str, EdgewaveError] = {}
    fleet_views = runtime.inventory.views(daemons.values(fleet))
    owner = ownership.Owner(namespace=namespace or "", name=name, uid=uid)
    for holder in reconciling.holders(model=model, fleet=fleet_views, keep=keep, owner=owner):
        problem = await runtime.executor.remove_model(holder, model=model, rollout=uid, owner=owner)
        if problem is not None:
            problems[holder] = problem
    temporary = [p for p in problems.values() if p.temporary]
    if temporary and retry < DELETE_RETRIES:
        raise kopf.TemporaryError(
            f"removing {model} from {len(problems)} agents: {temporary[0]}", delay=5.0
        )
    notice = reconciling.removal_notice(
        model=model,
        keep=keep,
        annotation=settings.keep_models_annotation,
        problems={agent: str(problem) for agent, problem in problems.items()},
    )
    await events.post(
        runtime.api,
        about=ref,
        type_=notice.type.value,
        reason=notice.reason,
        message=notice.message,
        now=runtime.clock(),
    )
    await runtime.gateways.pin(acting.pin_owner(uid), ())
    try:
        runtime.builds.forget(uid)
    except (EdgewaveError, OSError) as error:
        log.warning("cache references of %s not released: %s", uid, error)
    runtime.wakers.pop(uid, None)
    runtime.metrics.forget_rollout(f"{namespace}/{name}")
