"""Who owns a served model on this agent, and whether a request may touch it. Pure.

Agents serve a model under its name (the KServe v2 name clients call); the operator names
the ModelRollout each activation is for in the call's signed grant (`granted`: the owner is
taken from the grant, and a request naming another is refused before this, see
`serving.granting`). The first activation records that owner for the
model; later activations for another owner are refused (FAILED_PRECONDITION, naming the
owner), and so is one that names no owner for a model that has one. The model keeps
serving. Removal with an owner is refused likewise, so one rollout's eviction or deletion
never takes another's model. The owner is `namespace/name`: a rollout recreated under the
same name is the same owner (its new uid is recorded). The record goes when the model
does (a removal of every version), so a new owner starts from nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgewave_agent import errors
from edgewave_api import grants

_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_UID = re.compile(r"[A-Za-z0-9-]{0,64}")


@dataclass(frozen=True)
class Owner:
    """The ModelRollout a served model belongs to."""

    namespace: str
    name: str
    uid: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    def same(self, other: Owner) -> bool:
        return (self.namespace, self.name) == (other.namespace, other.name)


def parse(namespace: str, name: str, uid: str) -> Owner | None:
    """The owner a request names (None when it names none); refused unless well formed."""
    if not (namespace or name or uid):
        return None
    if not _NAMESPACE.fullmatch(namespace):
        raise errors.InvalidRequest(
            f"owner.namespace {namespace[:70]!r} is not a Kubernetes namespace name"
        )
    if not _NAME.fullmatch(name):
        raise errors.InvalidRequest(f"owner.name {name[:70]!r} is not a Kubernetes object name")
    if not _UID.fullmatch(uid):
        raise errors.InvalidRequest(f"owner.uid {uid[:70]!r} is not a Kubernetes uid")
    return Owner(namespace=namespace, name=name, uid=uid)


def granted(grant: grants.Grant) -> Owner | None:
    """The owner the operator's verified grant names (its uid: the grant's rollout)."""
    if grant.owner is None:
        return None
    return parse(grant.owner.namespace, grant.owner.name, grant.rollout)


def claim(model: str, *, current: Owner | None, requested: Owner | None) -> Owner | None:
    """The owner recorded once an activation for `requested` is allowed; raises if not."""
    if current is None:
        return requested
    if requested is None:
        raise errors.OwnerConflict(
            f"model {model} is owned by ModelRollout {current}; an activation must name its owner"
        )
    if not current.same(requested):
        raise errors.OwnerConflict(
            f"model {model} is owned by ModelRollout {current}, not {requested}; it keeps "
            "serving. Use another model name, or remove the model for its owner first"
        )
    return requested if requested.uid else current


def check_removal(model: str, *, current: Owner | None, requested: Owner | None) -> None:
    """Refuse a removal on behalf of `requested` when another rollout owns the model.

    A removal that names no owner (an administrator's, or an older operator's) is allowed.
    """
    if requested is None or current is None or current.same(requested):
        return
    raise errors.OwnerConflict(
        f"model {model} is owned by ModelRollout {current}, not {requested}; nothing removed"
    )
