"""What a dashboard button does: one request through `requesting.send`, said in one line.

The button waits `ANSWER_SECONDS` for the operator's answer (a page should not hang on an
operator that is down); a request not answered by then stays queued in the annotation and
applies when the operator runs, which the line says. A refused request raises
`actions.NotApplicable` (via `requesting.Refused`) with the operator's reason.
"""

from __future__ import annotations

from kubernetes_asyncio import client

from edgewave_operator.lifecycle import actions, requesting

ANSWER_SECONDS = 10.0


async def apply(
    api: client.ApiClient,
    *,
    action: actions.Action,
    name: str,
    namespace: str,
    wait_seconds: float = ANSWER_SECONDS,
) -> str:
    """Ask the operator to carry out `action` on `namespace/name`; what happened, one line."""
    try:
        outcome = await requesting.send(
            api, namespace=namespace, name=name, action=action, wait_seconds=wait_seconds
        )
    except requesting.Unanswered:
        return (
            f"rollout {namespace}/{name}: {action} requested; the operator has not answered "
            "yet (it applies when the operator runs)"
        )
    return outcome.line()
