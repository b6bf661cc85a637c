"""Ed25519 keys for signing audit checkpoints.

The private key arrives from settings (a PEM private key, or base64 of the 32-byte raw seed) and is
never printed: ``repr`` shows the key id only. Verifiers hold public keys only, by key id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SEED_BYTES = 32
KEY_ID_HEX_CHARS = 16


class SigningKeyError(ValueError):
    """Key material could not be loaded. The message never contains the material itself."""


def key_id_for(public_key: Ed25519PublicKey) -> str:
    """The key id of ``public_key``: the first 16 hex digits of SHA-256 of its raw 32 bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_HEX_CHARS]


def public_key_to_pem(public_key: Ed25519PublicKey) -> str:
    """``public_key`` as a SubjectPublicKeyInfo PEM string."""
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode("ascii")


class Signer:
    """Signs checkpoint payloads with one Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_for(self.public_key)

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r})"

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._private_key.sign(message)

    def public_key_pem(self) -> str:
        """The public half, as PEM, for auditors and evidence bundles."""
        return public_key_to_pem(self.public_key)


def load_signing_key(secret: object) -> Signer:
    """A :class:`Signer` from a PEM private key or base64 of the 32-byte raw seed.

    ``secret`` may be a ``str`` or a pydantic ``SecretStr``.
    """
    text = secret.get_secret_value() if hasattr(secret, "get_secret_value") else secret
    if not isinstance(text, str) or not text.strip():
        raise SigningKeyError("audit signing key is empty or not a string")
    text = text.strip()
    if text.startswith("-----BEGIN"):
        return Signer(_private_key_from_pem(text))
    try:
        seed = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SigningKeyError("audit signing key is neither PEM nor base64") from None
    if len(seed) != SEED_BYTES:
        raise SigningKeyError(f"audit signing key seed must be {SEED_BYTES} bytes, got {len(seed)}")
    return Signer(Ed25519PrivateKey.from_private_bytes(seed))


def _private_key_from_pem(text: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise SigningKeyError("audit signing key PEM could not be loaded") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError("audit signing key PEM is not an Ed25519 private key")
    return key


def generate_signing_key() -> str:
    """A fresh key as base64 of its raw seed: for the demo and tests, never for production."""
    seed = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return base64.b64encode(seed).decode("ascii")


def load_public_keys(pems: Iterable[str | bytes]) -> dict[str, Ed25519PublicKey]:
    """Trusted public keys by key id, from PEM strings (SubjectPublicKeyInfo)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for index, pem in enumerate(pems):
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError:
            raise SigningKeyError(f"public key #{index} is not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise SigningKeyError(f"public key #{index} is not an Ed25519 key")
        keys[key_id_for(key)] = key
    return keys


def signature_is_valid(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` over ``message`` verifies under ``public_key``."""
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
