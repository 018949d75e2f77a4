"""Who owns a served model name: one ModelRollout per `spec.model.name`, cluster-wide. Pure.

Agents serve a model under its name (`spec.model.name`, the KServe v2 model name clients
call), so two rollouts with one name, in one namespace or two, would replace each other's
model on shared agents and evict each other's versions. Admission therefore gives a model
name one owner: the first ModelRollout that claims it. A second claim (a create, or an
update that renames the model) is refused with a message naming the owner as
`namespace/name`; the owner's own updates are never refused on this account. A rollout
being deleted still owns its name until its finalizer has removed the model from the
agents, so a successor waits for that.

Two creates racing through the webhook can both pass (admission reads, it does not lock);
the agent's owner check (`Activate` carries the owner) is the backstop for that window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Claim:
    """A rollout's claim on a model name."""

    namespace: str
    name: str
    model: str
    uid: str = ""
    deleting: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def claim_of(body: Mapping[str, Any]) -> Claim | None:
    """The claim a stored ModelRollout makes (None when it names no model)."""
    metadata = body.get("metadata") or {}
    spec = body.get("spec") or {}
    model = (spec.get("model") or {}).get("name") if isinstance(spec, Mapping) else None
    if not isinstance(model, str) or not model:
        return None
    return Claim(
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        model=model,
        uid=str(metadata.get("uid") or ""),
        deleting=bool(metadata.get("deletionTimestamp")),
    )


def model_renamed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether an update changes the model name (a create counts as a change)."""
    if old is None:
        return True
    before, after = claim_of(old), claim_of(new)
    return (before.model if before else None) != (after.model if after else None)


def conflict(subject: Claim, *, claims: Iterable[Claim]) -> str | None:
    """Why `subject` may not claim its model name (None: it may), naming the owner."""
    for other in sorted(claims, key=lambda c: (c.namespace, c.name)):
        if other.model != subject.model or other.key == subject.key:
            continue
        if subject.uid and other.uid == subject.uid:
            continue
        waiting = (
            " (it is being deleted; retry once its models are removed from the agents)"
            if other.deleting
            else "; choose another spec.model.name, or update that rollout instead"
        )
        return (
            f'spec.model.name: model "{subject.model}" is already owned by ModelRollout '
            f"{other.key}{waiting}"
        )
    return None
