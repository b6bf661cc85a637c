"""``hash``: keyed HMAC-SHA256, deterministic per key so masked values still join.

Output ``hmac:<key_id>:<hex>``: the key id travels with the value, and rotating the key changes every
digest visibly. Unlike a salted random hash (presidio ``hash.py``), the same input always gives the
same output under the same key, and without the key nobody can brute-force small input spaces.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import Field

from pipeline.keys import KeyRing
from pipeline.masking.base import StrictParams, Strategy, canonical_json

PURPOSE = "hmac-sha256:hash"


class HashParams(StrictParams):
    key: str = Field(min_length=1)
    length: int = Field(default=64, ge=16, le=64)  # hex characters kept; 16 = 64 bits
    prefix: bool = True  # "hmac:<key_id>:" before the digest


def canonical_bytes(value: object) -> bytes:
    """Strings hash as their UTF-8 bytes (so other systems can compute the same digest);
    other values as canonical JSON with sorted keys."""
    if isinstance(value, str):
        return value.encode("utf-8")
    return canonical_json(value)


class Hash(Strategy):
    """Null stays null (it carries nothing to join on); every other value is digested whole."""

    name = "hash"
    Params = HashParams

    def __init__(self, params: HashParams, keys: KeyRing) -> None:
        super().__init__(params, keys)
        self.key_id = params.key
        self._key = keys.derive(params.key, PURPOSE)
        self._prefix = f"hmac:{params.key}:" if params.prefix else ""
        self._length = params.length
        # The keyed state after the key's inner and outer pads, copied per value instead of rebuilt.
        self._keyed = hmac.new(self._key, digestmod=hashlib.sha256)

    def digest(self, value: object) -> str:
        mac = self._keyed.copy()
        mac.update(canonical_bytes(value))
        return self._prefix + mac.hexdigest()[: self._length]

    def _is_own_output(self, value: object) -> bool:
        # Masking an already-masked value again must not change it (re-screening is idempotent).
        if not (self._prefix and isinstance(value, str) and value.startswith(self._prefix)):
            return False
        tail = value[len(self._prefix):]
        return len(tail) == self.params.length and all(c in "0123456789abcdef" for c in tail)

    def mask(self, value: object) -> object:
        if value is None or self._is_own_output(value):
            return value
        return self.digest(value)
