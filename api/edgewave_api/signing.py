"""What the operator signs and the agent verifies before activating an engine.

One canonical encoding of (model, version, digest, backend), one Ed25519 signing function
(operator side) and one verifying function (agent side), in one module, so the two sides
can never disagree about the bytes. The encoding is JSON with sorted keys and no spaces,
with a purpose tag, so a signature for another purpose can never be replayed as an
activation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from edgewave_api.errors import PermanentError

PURPOSE = "edgewave.activate.v1"


class SignatureRejected(PermanentError):
    """The activation's signature does not verify with the agent's configured key."""


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


def activation_payload(*, model: str, version: str, digest: str, backend: str) -> bytes:
    """The canonical bytes an activation signature covers."""
    fields = {
        "backend": backend,
        "digest": digest,
        "model": model,
        "purpose": PURPOSE,
        "version": version,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign_activation(
    private_key_pem: bytes, *, model: str, version: str, digest: str, backend: str
) -> bytes:
    """The operator's signature over an activation (64 bytes)."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise PermanentError("the activation signing key must be an Ed25519 private key (PEM)")
    payload = activation_payload(model=model, version=version, digest=digest, backend=backend)
    return key.sign(payload)


def load_public_key(public_key_pem: bytes) -> ed25519.Ed25519PublicKey:
    key = serialization.load_pem_public_key(public_key_pem)
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise PermanentError(
            "the activation public key must be an Ed25519 public key (PEM, SubjectPublicKeyInfo)"
        )
    return key


def verify_activation(
    public_key: ed25519.Ed25519PublicKey,
    signature: bytes,
    *,
    model: str,
    version: str,
    digest: str,
    backend: str,
) -> None:
    """Raise SignatureRejected unless `signature` covers exactly this activation."""
    payload = activation_payload(model=model, version=version, digest=digest, backend=backend)
    try:
        public_key.verify(signature, payload)
    except InvalidSignature:
        raise SignatureRejected(
            f"signature over {model}:{version} ({backend}, {digest[:12]}) does not verify with"
            " the agent's activation key: sign with the operator key whose public half the"
            " agent is configured with"
        ) from None
