"""Activation signatures: the operator signs exactly what the agent verifies."""

from __future__ import annotations

import pytest

from edgewave_api import signing

FIELDS = {"model": "resnet", "version": "7", "digest": "a" * 64, "backend": "tensorrt-rtx"}


def test_canonical_payload_is_stable() -> None:
    assert signing.activation_payload(**FIELDS) == (
        b'{"backend":"tensorrt-rtx","digest":"' + b"a" * 64
        + b'","model":"resnet","purpose":"edgewave.activate.v1","version":"7"}'
    )  # fmt: skip


def test_a_signature_verifies_only_for_what_was_signed() -> None:
    key = signing.new_signing_key()
    signature = signing.sign_activation(key.private_pem, **FIELDS)
    public = signing.load_public_key(key.public_pem)
    signing.verify_activation(public, signature, **FIELDS)
    for field, value in FIELDS.items():
        changed = {**FIELDS, field: value + "x"}
        with pytest.raises(signing.SignatureRejected, match="does not verify"):
            signing.verify_activation(public, signature, **changed)
    other = signing.load_public_key(signing.new_signing_key().public_pem)
    with pytest.raises(signing.SignatureRejected):
        signing.verify_activation(other, signature, **FIELDS)
    with pytest.raises(signing.SignatureRejected):
        signing.verify_activation(public, b"\0" * 64, **FIELDS)


def test_field_boundaries_cannot_be_shifted() -> None:
    key = signing.new_signing_key()
    signature = signing.sign_activation(
        key.private_pem, **{**FIELDS, "model": "a", "version": "bc"}
    )
    public = signing.load_public_key(key.public_pem)
    with pytest.raises(signing.SignatureRejected):
        signing.verify_activation(public, signature, **{**FIELDS, "model": "ab", "version": "c"})
