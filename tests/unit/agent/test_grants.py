"""Grants: the operator signs exactly one call for one agent; the agent refuses the rest.

Pure checks (`edgewave_api.grants`), the signature (`signing`) and the agent's gate with its
persisted sequences (`serving.granting`, on a real state file).
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from edgewave_agent import errors, owners
from edgewave_agent.serving.granting import Gate
from edgewave_agent.serving.ledger import Ledger
from edgewave_api import grants, signing
from edgewave_api.grants import Action, Call, Grant

NOW_MS = 1_800_000_000_000
KEY = signing.new_signing_key()
CALL = Call(
    action=Action.ACTIVATE,
    agent="edge-a",
    model="resnet",
    version="7",
    digest="a" * 64,
    backend="onnxruntime",
)
GRANT = Grant(call=CALL, rollout="uid-1", sequence=NOW_MS, expires_ms=NOW_MS + 60_000)


def test_the_encoding_is_canonical_and_round_trips() -> None:
    payload = grants.encode(GRANT)
    assert payload.startswith(b'{"action":"activate","agent":"edge-a","all_versions":false')
    assert grants.decode(payload) == GRANT
    with pytest.raises(grants.GrantRefused, match="canonical"):
        grants.decode(payload.replace(b'{"action"', b'{ "action"'))
    with pytest.raises(grants.GrantRefused, match="purpose"):
        grants.decode(payload.replace(b"edgewave.grant.v1", b"edgewave.other.v1"))
    with pytest.raises(grants.GrantRefused, match="sequence must be"):
        grants.decode(payload.replace(f'"sequence":{NOW_MS}'.encode(), b'"sequence":-1'))


@pytest.mark.parametrize(
    ("call", "now_ms", "highest", "reason"),
    [
        (dataclasses.replace(CALL, agent="edge-b"), NOW_MS, 0, "for agent 'edge-a'.*'edge-b'"),
        (dataclasses.replace(CALL, action=Action.ROLLBACK), NOW_MS, 0, "for activate, not"),
        (dataclasses.replace(CALL, version="6"), NOW_MS, 0, "version is '7' but .* '6'"),
        (dataclasses.replace(CALL, digest="b" * 64), NOW_MS, 0, "digest is"),
        (dataclasses.replace(CALL, backend="tensorrt"), NOW_MS, 0, "backend is"),
        (CALL, NOW_MS + 60_000 + grants.CLOCK_SKEW_MS + 1, 0, "expired"),
        (CALL, NOW_MS - grants.MAX_LIFETIME_MS, 0, "lives longer"),
        (CALL, NOW_MS, NOW_MS, "not above"),
        (CALL, NOW_MS, NOW_MS + 5, "not above"),
    ],
)
def test_a_grant_permits_only_its_call(call: Call, now_ms: int, highest: int, reason: str) -> None:
    with pytest.raises(grants.GrantRefused, match=reason):
        grants.check(GRANT, call=call, now_ms=now_ms, highest_sequence=highest)


def test_a_fresh_grant_passes_within_the_clock_skew() -> None:
    grants.check(GRANT, call=CALL, now_ms=NOW_MS, highest_sequence=NOW_MS - 1)
    late = NOW_MS + 60_000 + grants.CLOCK_SKEW_MS
    grants.check(GRANT, call=CALL, now_ms=late, highest_sequence=0)


def test_builds_carry_no_sequence() -> None:
    build = Call(action=Action.BUILD, agent="edge-a", spec_sha256="c" * 64)
    grant = Grant(call=build, rollout="", sequence=0, expires_ms=NOW_MS + 1000)
    grants.check(grant, call=build, now_ms=NOW_MS, highest_sequence=NOW_MS)


def test_sequences_grow_past_the_agents_highest_and_the_clock() -> None:
    assert grants.next_sequence(highest_seen=0, now_ms=NOW_MS) == NOW_MS
    assert grants.next_sequence(highest_seen=NOW_MS + 7, now_ms=NOW_MS) == NOW_MS + 8


def test_the_signature_covers_the_payload_exactly() -> None:
    signed = signing.sign_grant(KEY.private_pem, GRANT)
    public = signing.load_public_key(KEY.public_pem)
    assert signing.open_grant(public, payload=signed.payload, signature=signed.signature) == GRANT
    other = signing.load_public_key(signing.new_signing_key().public_pem)
    tampered = signed.payload.replace(b'"version":"7"', b'"version":"1"')
    for key, payload, signature, reason in (
        (other, signed.payload, signed.signature, "does not verify"),
        (public, tampered, signed.signature, "does not verify"),
        (public, b"", b"", "carries no grant"),
        (public, signed.payload, b"", "carries no grant"),
    ):
        with pytest.raises(signing.SignatureRejected, match=reason):
            signing.open_grant(key, payload=payload, signature=signature)


def _gate(path: Path, *, now_ms: int) -> Gate:
    ledger = Ledger(path, lock=threading.RLock())
    ledger.load()
    return Gate(
        public_key=signing.load_public_key(KEY.public_pem),
        ledger=ledger,
        clock=lambda: now_ms / 1000,
    )


def _admit(gate: Gate, grant: Grant, call: Call = CALL) -> None:
    signed = signing.sign_grant(KEY.private_pem, grant)
    gate.admit(payload=signed.payload, signature=signed.signature, call=call)


def test_the_gate_remembers_sequences_across_restarts_and_removals(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    gate = _gate(state, now_ms=NOW_MS)
    _admit(gate, GRANT)
    with pytest.raises(errors.GrantRefused, match="not above") as caught:
        _admit(gate, GRANT)
    assert caught.value.highest_sequence == NOW_MS
    # A restart (a new ledger read from disk) still refuses the replay ...
    restarted = _gate(state, now_ms=NOW_MS)
    with pytest.raises(errors.GrantRefused, match="not above"):
        _admit(restarted, dataclasses.replace(GRANT, sequence=NOW_MS - 1))
    # ... and the model's removal forgets no sequence.
    restarted._ledger.replace({})
    with pytest.raises(errors.GrantRefused, match="not above"):
        _admit(_gate(state, now_ms=NOW_MS), GRANT)
    _admit(restarted, dataclasses.replace(GRANT, sequence=NOW_MS + 1))
    # Sequences are per model.
    other = dataclasses.replace(CALL, model="other")
    _admit(restarted, dataclasses.replace(GRANT, call=other), other)


def test_the_gate_refuses_unsigned_and_expired_grants(tmp_path: Path) -> None:
    gate = _gate(tmp_path / "state.json", now_ms=NOW_MS + 10 * 60_000)
    with pytest.raises(errors.SignatureInvalid, match="carries no grant"):
        gate.admit(payload=b"", signature=b"", call=CALL)
    with pytest.raises(errors.GrantRefused, match="expired"):
        _admit(gate, GRANT)
    assert gate._ledger.sequence("resnet") == 0


OWNED = dataclasses.replace(GRANT, owner=grants.Owner(namespace="team-a", name="classifier"))


def test_the_owner_is_signed_with_the_grant() -> None:
    payload = grants.encode(OWNED)
    assert b'"owner":{"name":"classifier","namespace":"team-a"}' in payload
    assert grants.decode(payload) == OWNED
    assert b'"owner":null' in grants.encode(GRANT)
    with pytest.raises(grants.GrantRefused, match="owner must be"):
        grants.decode(payload.replace(b'{"name":"classifier","namespace":"team-a"}', b'"x"'))
    with pytest.raises(grants.GrantRefused, match="name must be"):
        grants.decode(payload.replace(b'"name":"classifier"', b'"name":7'))
    # Changing the owner in a signed payload breaks the signature.
    signed = signing.sign_grant(KEY.private_pem, OWNED)
    forged = signed.payload.replace(b"team-a", b"team-b")
    with pytest.raises(signing.SignatureRejected):
        signing.open_grant(
            signing.load_public_key(KEY.public_pem), payload=forged, signature=signed.signature
        )


@pytest.mark.parametrize(
    ("grant", "requested", "reason"),
    [
        (OWNED, owners.Owner("team-b", "classifier", "uid-1"), "owner.namespace is 'team-b'"),
        (OWNED, owners.Owner("team-a", "other", "uid-1"), "owner.name is 'other'"),
        (OWNED, owners.Owner("team-a", "classifier", "uid-9"), "owner.uid is 'uid-9'"),
        (GRANT, owners.Owner("team-a", "classifier", "uid-1"), "its grant names none"),
    ],
)
def test_a_grant_whose_owner_differs_from_the_requests_is_refused(
    tmp_path: Path, grant: Grant, requested: owners.Owner, reason: str
) -> None:
    gate = _gate(tmp_path / "state.json", now_ms=NOW_MS)
    signed = signing.sign_grant(KEY.private_pem, grant)
    with pytest.raises(errors.InvalidRequest, match=reason) as caught:
        gate.admit(
            payload=signed.payload, signature=signed.signature, call=CALL, requested_owner=requested
        )
    assert caught.value.status == "INVALID_ARGUMENT"
    # Refused before its sequence counted: the request as signed still passes.
    assert gate._ledger.sequence("resnet") == 0
    gate.admit(payload=signed.payload, signature=signed.signature, call=CALL)


def test_the_owner_comes_from_the_grant(tmp_path: Path) -> None:
    gate = _gate(tmp_path / "state.json", now_ms=NOW_MS)
    signed = signing.sign_grant(KEY.private_pem, OWNED)
    same = owners.Owner("team-a", "classifier", "uid-1")
    admitted = gate.admit(
        payload=signed.payload, signature=signed.signature, call=CALL, requested_owner=same
    )
    assert owners.granted(admitted) == same
    # A request naming its owner without the uid names the same owner.
    without_uid = signing.sign_grant(
        KEY.private_pem, dataclasses.replace(OWNED, sequence=NOW_MS + 1)
    )
    admitted = gate.admit(
        payload=without_uid.payload,
        signature=without_uid.signature,
        call=CALL,
        requested_owner=owners.Owner("team-a", "classifier"),
    )
    assert owners.granted(admitted) == same
    assert owners.granted(GRANT) is None
