"""The operator's permission for one mutating call on one agent, and the agent's checks.

A signature over (model, version, digest, backend) alone could be replayed: to downgrade a
model to an old version, on any agent, at any time. A grant binds everything that makes a
call what it is: the action (activate, rollback, remove, build), the agent it is for, the
rollout it belongs to (its uid, and its namespace/name: the owner the agent records for
the model), the model, version, digest and backend (as relevant; remove names its target,
build the sha256 of its spec), a per-model sequence number and an expiry.
The agent accepts a grant only if its signature verifies (`signing.open_grant`), every
field matches the call it came with and the agent itself, it has not expired (a small
clock skew allowed) and does not live too long, and its sequence is above the highest the
agent accepted for that model (`check`). Builds are content-addressed and idempotent, so
they carry no sequence; the expiry bounds their replay.

The agent takes a call's owner from its grant, never from the request alone: a request
may still name its owner, and then it must be the grant's (`check_owner`), so a gateway
relaying the call cannot hand a model to another rollout without a new grant.

The operator picks sequences as max(the agent's highest + 1, now in milliseconds): they
grow across operator restarts and leader changes without shared state, and the agent
reports its highest per model in Describe so a replica with a slow clock catches up.

Pure: one canonical encoding and pure checks with the clock passed in.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass

from edgewave_api.errors import PermanentError

PURPOSE = "edgewave.grant.v1"
# How far the operator's and the agent's clocks may disagree.
CLOCK_SKEW_MS = 30_000
# The longest a grant may live: long enough to cross a slow link, short enough that a
# captured grant is soon worthless.
MAX_LIFETIME_MS = 15 * 60_000
DEFAULT_LIFETIME_MS = 5 * 60_000
_MAX_FIELD = 512


class Action(enum.StrEnum):
    ACTIVATE = "activate"
    ROLLBACK = "rollback"
    REMOVE = "remove"
    BUILD = "build"


class GrantRefused(PermanentError):
    """The grant does not permit this call (the message says which field or why)."""


class OwnerMismatch(PermanentError):
    """The request names another owner than its grant (the message says which field)."""


class GrantStale(GrantRefused):
    """The grant's sequence is not above the highest the agent accepted for the model."""

    def __init__(self, message: str, *, highest: int) -> None:
        super().__init__(message)
        self.highest = highest


@dataclass(frozen=True)
class Call:
    """What one call asks for, as the agent sees it (or the operator means it)."""

    action: Action
    agent: str
    model: str = ""
    version: str = ""
    digest: str = ""
    backend: str = ""
    # remove: the whole model, the serving versions included.
    all_versions: bool = False
    # build: sha256 of the build spec's canonical JSON.
    spec_sha256: str = ""


@dataclass(frozen=True)
class Owner:
    """The ModelRollout a call is for, by namespace and name (its uid is `Grant.rollout`)."""

    namespace: str
    name: str


@dataclass(frozen=True)
class Grant:
    call: Call
    rollout: str
    sequence: int
    expires_ms: int
    # None: the call is for no rollout's model (builds; removals by an administrator).
    owner: Owner | None = None

    @property
    def sequenced(self) -> bool:
        """Whether the grant's sequence is checked (all but builds)."""
        return self.call.action is not Action.BUILD


def encode(grant: Grant) -> bytes:
    """The canonical bytes a grant's signature covers: sorted-key JSON with a purpose tag."""
    fields = {
        **asdict(grant.call),
        "action": str(grant.call.action),
        "expires_ms": grant.expires_ms,
        "owner": asdict(grant.owner) if grant.owner is not None else None,
        "purpose": PURPOSE,
        "rollout": grant.rollout,
        "sequence": grant.sequence,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def decode(payload: bytes) -> Grant:
    """The grant in `payload` (already signature-checked); GrantRefused if malformed."""
    try:
        fields = json.loads(payload)
    except ValueError:
        raise GrantRefused("the grant is not JSON") from None
    if not isinstance(fields, dict) or fields.get("purpose") != PURPOSE:
        raise GrantRefused(f"the grant's purpose is not {PURPOSE}")
    try:
        call = Call(
            action=Action(fields["action"]),
            agent=_text(fields, "agent"),
            model=_text(fields, "model"),
            version=_text(fields, "version"),
            digest=_text(fields, "digest"),
            backend=_text(fields, "backend"),
            all_versions=_flag(fields, "all_versions"),
            spec_sha256=_text(fields, "spec_sha256"),
        )
        grant = Grant(
            call=call,
            rollout=_text(fields, "rollout"),
            sequence=_integer(fields, "sequence"),
            expires_ms=_integer(fields, "expires_ms"),
            owner=_owner(fields),
        )
    except (KeyError, ValueError) as error:
        raise GrantRefused(f"the grant is malformed: {error}") from None
    if encode(grant) != payload:
        raise GrantRefused("the grant is not in canonical form (unknown or reordered fields)")
    return grant


def _text(fields: dict[str, object], name: str) -> str:
    value = fields[name]
    if not isinstance(value, str) or len(value) > _MAX_FIELD:
        raise ValueError(f"{name} must be a string of at most {_MAX_FIELD} characters")
    return value


def _owner(fields: dict[str, object]) -> Owner | None:
    value = fields["owner"]
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("owner must be an object or null")
    return Owner(namespace=_text(value, "namespace"), name=_text(value, "name"))


def _flag(fields: dict[str, object], name: str) -> bool:
    value = fields[name]
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


def _integer(fields: dict[str, object], name: str) -> int:
    value = fields[name]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 63:
        raise ValueError(f"{name} must be a non-negative 63-bit integer")
    return value


def check(grant: Grant, *, call: Call, now_ms: int, highest_sequence: int) -> None:
    """Raise GrantRefused unless `grant` permits exactly `call` now.

    `call.agent` is the checking agent's own name, never taken from the request.
    Rules, in order: same agent; same action; every other field equal; not expired (with
    CLOCK_SKEW_MS); not living longer than MAX_LIFETIME_MS; sequence above
    `highest_sequence` for all but builds (GrantStale).
    """
    if grant.call.agent != call.agent:
        raise GrantRefused(
            f"the grant is for agent {grant.call.agent!r}, and this is agent {call.agent!r}"
        )
    if grant.call.action is not call.action:
        raise GrantRefused(f"the grant is for {grant.call.action}, not {call.action}")
    for name, granted in asdict(grant.call).items():
        asked = getattr(call, name)
        if granted != asked:
            raise GrantRefused(f"the grant's {name} is {granted!r} but the request's is {asked!r}")
    if now_ms > grant.expires_ms + CLOCK_SKEW_MS:
        raise GrantRefused(
            f"the grant expired {(now_ms - grant.expires_ms) / 1000:.0f}s ago: the operator"
            " signs a new one (check both clocks if this repeats)"
        )
    if grant.expires_ms - now_ms > MAX_LIFETIME_MS + CLOCK_SKEW_MS:
        raise GrantRefused(
            f"the grant lives longer than {MAX_LIFETIME_MS // 1000}s: check the operator's clock"
        )
    if grant.sequenced and grant.sequence <= highest_sequence:
        raise GrantStale(
            f"the grant's sequence {grant.sequence} is not above {highest_sequence}, the"
            f" highest this agent accepted for model {call.model!r}: a replayed or"
            " superseded grant",
            highest=highest_sequence,
        )


def check_owner(grant: Grant, *, namespace: str, name: str, uid: str) -> None:
    """Raise OwnerMismatch unless the owner a request names is its grant's.

    Called only when the request names one: namespace and name must be the grant's owner's
    (a request naming an owner for a grant without one is refused too), and the uid, when
    given, the grant's rollout.
    """
    granted = grant.owner
    if granted is None:
        raise OwnerMismatch(f"the request names owner {namespace}/{name} but its grant names none")
    for field, asked, bound in (
        ("namespace", namespace, granted.namespace),
        ("name", name, granted.name),
    ):
        if asked != bound:
            raise OwnerMismatch(
                f"owner.{field} is {asked[:70]!r} but the grant's is {bound!r}: the owner"
                " comes with a grant the operator signed for it"
            )
    if uid and uid != grant.rollout:
        raise OwnerMismatch(
            f"owner.uid is {uid[:70]!r} but the grant's rollout is {grant.rollout!r}: the"
            " owner comes with a grant the operator signed for it"
        )


def next_sequence(*, highest_seen: int, now_ms: int) -> int:
    """The sequence of the operator's next grant for a model (see the module docstring)."""
    return max(highest_seen + 1, now_ms)
