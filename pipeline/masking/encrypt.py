"""``encrypt``: AES-256-GCM field encryption, reversible only with the key.

Output ``enc:v1:<key_id>:<base64url(nonce | ciphertext)>``. The key id is in the output, so deleting
that key from the region's key ring makes every value under it unrecoverable (crypto-shredding).
``context`` (e.g. the dataset) selects the subkey and is bound as associated data, so a value cannot
be replayed into another dataset. The plaintext is the value's JSON, so ``decrypt`` restores the type.
"""

from __future__ import annotations

import base64
import os

import json
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field

from pipeline.keys import KeyRing
from pipeline.masking.base import MaskingError, StrictParams, Strategy, canonical_json

PREFIX = "enc:v1:"
_NONCE = 12


class EncryptParams(StrictParams):
    key: str = Field(min_length=1)
    context: str = ""


def _aead(keys: KeyRing, key_id: str, context: str) -> tuple[AESGCM, bytes]:
    key = keys.derive(key_id, f"aes-256-gcm:{context}")
    return AESGCM(key), f"residency:{PREFIX}{key_id}:{context}".encode()


def parse_envelope(token: object) -> tuple[str, bytes] | None:
    """(key id, nonce|ciphertext) of an encryption envelope, or None when ``token`` is not one."""
    if not isinstance(token, str) or not token.startswith(PREFIX):
        return None
    key_id, sep, body = token[len(PREFIX):].rpartition(":")
    if not (sep and key_id):
        return None
    try:
        blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError:
        return None
    return (key_id, blob) if len(blob) > _NONCE + 16 else None


def decrypt(token: str, keys: KeyRing, context: str = "") -> object:
    """The original JSON value of an ``enc:v1:`` token. ``MissingKeyError`` once the key is deleted;
    :class:`MaskingError` for a malformed or tampered token."""
    parsed = parse_envelope(token)
    if parsed is None:
        raise MaskingError("decrypt: not an enc:v1 envelope")
    key_id, blob = parsed
    aead, aad = _aead(keys, key_id, context)
    try:
        plaintext = aead.decrypt(blob[:_NONCE], blob[_NONCE:], aad)
    except InvalidTag:
        raise MaskingError(f"decrypt: authentication failed under key {key_id!r} and this context") from None
    return json.loads(plaintext)  # not orjson: it refuses integers beyond 64 bits


class Encrypt(Strategy):
    """Any JSON value except null (nothing to hide) is encrypted whole, objects included."""

    name = "encrypt"
    Params = EncryptParams

    def __init__(self, params: EncryptParams, keys: KeyRing) -> None:
        super().__init__(params, keys)
        self.key_id = params.key
        self._aead, self._aad = _aead(keys, params.key, params.context)

    def _is_own_output(self, value: object) -> bool:
        parsed = parse_envelope(value)
        if parsed is None or parsed[0] != self.key_id:
            return False
        try:
            self._aead.decrypt(parsed[1][:_NONCE], parsed[1][_NONCE:], self._aad)
        except InvalidTag:
            return False
        return True

    def mask(self, value: object) -> object:
        if value is None or self._is_own_output(value):
            return value
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, canonical_json(value), self._aad)
        body = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()
        return f"{PREFIX}{self.key_id}:{body}"
