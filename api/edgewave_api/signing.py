"""The operator's Ed25519 key and its signatures over grants (`edgewave_api.grants`).

One signing function (operator side) and one opening function (agent side: verify, then
decode), in one module, so the two sides can never disagree about the bytes: the
signature covers the grant's canonical encoding exactly as it travels (`SignedGrant`).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from edgewave_api import grants
from edgewave_api.errors import PermanentError


class SignatureRejected(PermanentError):
    """The call's grant is missing or its signature does not verify with the agent's key."""


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 key pair in PEM: the private half stays with the operator."""

    private_pem: bytes
    public_pem: bytes


def new_signing_key() -> SigningKey:
    key = ed25519.Ed25519PrivateKey.generate()
    return SigningKey(
        private_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        public_pem=key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


@dataclass(frozen=True)
class SignedGrant:
    payload: bytes
    signature: bytes


def _private_key(private_key_pem: bytes) -> ed25519.Ed25519PrivateKey:
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise PermanentError("the grant signing key must be an Ed25519 private key (PEM)")
    return key


def sign_grant(private_key_pem: bytes, grant: grants.Grant) -> SignedGrant:
    """The operator's signature (64 bytes) over a grant's canonical bytes."""
    payload = grants.encode(grant)
    return SignedGrant(payload=payload, signature=_private_key(private_key_pem).sign(payload))


def load_public_key(public_key_pem: bytes) -> ed25519.Ed25519PublicKey:
    key = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise PermanentError(
            "the activation public key must be an Ed25519 public key (PEM, SubjectPublicKeyInfo)"
        )
    return key


def open_grant(
    public_key: ed25519.Ed25519PublicKey, *, payload: bytes, signature: bytes
) -> grants.Grant:
    """The grant in `payload` once its signature verifies; SignatureRejected otherwise."""
    if not payload or not signature:
        raise SignatureRejected(
            "the call carries no grant: the operator signs one for every activate, rollback,"
            " remove and build"
        )
    try:
        public_key.verify(signature, payload)
    except InvalidSignature:
        raise SignatureRejected(
            "the grant's signature does not verify with the agent's activation key: sign"
            " with the operator key whose public half the agent is configured with"
        ) from None
    return grants.decode(payload)
