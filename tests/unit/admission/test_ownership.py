"""One owner per model name (`admission.ownership`): claims, renames and conflicts, in tables."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest

from edgewave_api.errors import TemporaryError
from edgewave_operator.admission import gathering, ownership, webhook


def body(
    namespace: str, name: str, model: Any = "classifier", *, uid: str = "", deleting: bool = False
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"namespace": namespace, "name": name, "uid": uid}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-07T00:00:00Z"
    return {"metadata": metadata, "spec": {"model": {"name": model}}}


def claim(*args: Any, **kwargs: Any) -> ownership.Claim:
    found = ownership.claim_of(body(*args, **kwargs))
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("subject", "others", "owner"),
    [
        # another namespace, same model name: refused, naming the first
        (claim("team-b", "r"), [claim("team-a", "r", uid="1")], "team-a/r"),
        # same namespace, another rollout
        (claim("team-a", "s"), [claim("team-a", "r", uid="1")], "team-a/r"),
        # the owner's own update (listed with its uid): allowed
        (claim("team-a", "r", uid="1"), [claim("team-a", "r", uid="1")], None),
        # a create of the same name (no uid yet) is the same key: allowed (the API server
        # answers AlreadyExists itself)
        (claim("team-a", "r"), [claim("team-a", "r", uid="1")], None),
        # other model names do not matter
        (claim("team-b", "r"), [claim("team-a", "r", "other", uid="1")], None),
        # a rollout being deleted still owns the name
        (claim("team-b", "r"), [claim("team-a", "r", uid="1", deleting=True)], "team-a/r"),
        # several owners already (from before this rule): the first by key is named
        (
            claim("team-c", "r"),
            [claim("team-b", "x", uid="2"), claim("team-a", "y", uid="1")],
            "team-a/y",
        ),
    ],
)
def test_conflict(
    subject: ownership.Claim, others: list[ownership.Claim], owner: str | None
) -> None:
    reason = ownership.conflict(subject, claims=others)
    if owner is None:
        assert reason is None
    else:
        assert reason is not None
        assert f"ModelRollout {owner}" in reason
        assert reason.startswith('spec.model.name: model "')


def test_a_deleting_owner_says_to_wait() -> None:
    reason = ownership.conflict(claim("b", "r"), claims=[claim("a", "r", uid="1", deleting=True)])
    assert reason is not None and "being deleted" in reason


@pytest.mark.parametrize("model", [None, "", 3, ["x"]])
def test_a_body_without_a_model_name_claims_nothing(model: Any) -> None:
    assert ownership.claim_of(body("a", "r", model)) is None
    assert ownership.claim_of({"metadata": {}, "spec": "junk"}) is None


@pytest.mark.parametrize(
    ("old", "new", "renamed"),
    [
        (None, body("a", "r"), True),
        (body("a", "r"), body("a", "r"), False),
        (body("a", "r"), body("a", "r", "other"), True),
    ],
)
def test_model_renamed(old: dict[str, Any] | None, new: dict[str, Any], renamed: bool) -> None:
    assert ownership.model_renamed(old, new) is renamed


def test_unreadable_rollouts_refuse_the_claim_fail_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the rollouts cannot be listed, a claim is refused (503), never let through."""

    async def unreadable(api: object) -> list[ownership.Claim]:
        raise TemporaryError("listing modelrollouts: connection refused")

    monkeypatch.setattr(gathering, "claims", unreadable)
    api: Any = object()
    context = webhook.AdmissionContext(api=api)
    claim: Any = body("team-b", "r")
    with pytest.raises(kopf.AdmissionError) as refused:
        asyncio.run(webhook._check_ownership(context, body=claim, subject="ModelRollout team-b/r"))
    assert refused.value.code == webhook.UNAVAILABLE
    assert "model ownership could not be checked" in str(refused.value)
    assert "connection refused" in str(refused.value)
