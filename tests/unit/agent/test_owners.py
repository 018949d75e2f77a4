"""Served models carry their owner (`edgewave_agent.owners`, persisted by `slots`): tables."""

from __future__ import annotations

import pytest

from edgewave_agent import errors, owners, slots

A = owners.Owner(namespace="team-a", name="r", uid="u1")
A_AGAIN = owners.Owner(namespace="team-a", name="r", uid="u2")
B = owners.Owner(namespace="team-b", name="r", uid="u3")


@pytest.mark.parametrize(
    ("current", "requested", "result"),
    [
        (None, None, None),
        (None, A, A),
        (A, A, A),
        (A, A_AGAIN, A_AGAIN),  # recreated under the same name: same owner, new uid
        (A, owners.Owner(namespace="team-a", name="r"), A),  # no uid: the known one stays
    ],
)
def test_claims_that_pass(
    current: owners.Owner | None, requested: owners.Owner | None, result: owners.Owner | None
) -> None:
    assert owners.claim("m", current=current, requested=requested) == result


@pytest.mark.parametrize(
    ("requested", "says"),
    [
        (B, "owned by ModelRollout team-a/r, not team-b/r"),
        (None, "an activation must name its owner"),
        (owners.Owner(namespace="team-a", name="s"), "not team-a/s"),
    ],
)
def test_claims_that_are_refused(requested: owners.Owner | None, says: str) -> None:
    with pytest.raises(errors.OwnerConflict, match=says) as raised:
        owners.claim("m", current=A, requested=requested)
    assert raised.value.status == "FAILED_PRECONDITION"


@pytest.mark.parametrize(
    ("current", "requested", "refused"),
    [(A, B, True), (A, A_AGAIN, False), (A, None, False), (None, B, False)],
)
def test_removal(
    current: owners.Owner | None, requested: owners.Owner | None, refused: bool
) -> None:
    if refused:
        with pytest.raises(errors.OwnerConflict, match="nothing removed"):
            owners.check_removal("m", current=current, requested=requested)
    else:
        owners.check_removal("m", current=current, requested=requested)


@pytest.mark.parametrize(
    ("namespace", "name", "uid", "field"),
    [
        ("Team", "r", "", "owner.namespace"),
        ("a" * 64, "r", "", "owner.namespace"),
        ("", "r", "", "owner.namespace"),
        ("team", "R/x", "", "owner.name"),
        ("team", "", "u", "owner.name"),
        ("team", "r", "u 1", "owner.uid"),
        ("team", "r", "x" * 65, "owner.uid"),
    ],
)
def test_malformed_owners_are_refused(namespace: str, name: str, uid: str, field: str) -> None:
    with pytest.raises(errors.InvalidRequest, match=field):
        owners.parse(namespace, name, uid)


def test_no_owner_fields_mean_no_owner() -> None:
    assert owners.parse("", "", "") is None
    assert owners.parse("team-a", "r", "u1") == A


def test_the_owner_survives_the_state_file_and_old_state_has_none() -> None:
    ref = slots.VersionRef(version="1", digest="a" * 64, backend="onnxruntime")
    models = {"m": slots.ModelSlots(model="m", history=(ref,), held=(ref,), owner=A)}
    document = slots.to_document(models)
    assert document["models"]["m"]["owner"] == {"namespace": "team-a", "name": "r", "uid": "u1"}
    assert slots.from_document(document) == models
    del document["models"]["m"]["owner"]
    assert slots.from_document(document)["m"].owner is None
