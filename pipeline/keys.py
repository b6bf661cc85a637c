"""Key material for masking, handed in from settings, never from code.

The policy names keys by id; the secrets arrive through :class:`pipeline.settings.Settings`.
Each use derives its own subkey with HKDF, so one secret never serves two purposes.
"""

from __future__ import annotations

from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_SECRET_BYTES = 32


class MissingKeyError(LookupError):
    """A policy names a key id that settings do not provide."""

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"key {key_id!r} is named by the policy but not provided; "
            f"set it in RESIDENCY_KEYS (a JSON object of key id to secret) or RESIDENCY_KEYS_FILE"
        )
        self.key_id = key_id


class KeyRing:
    """Secrets by key id. Never printed: ``repr`` shows ids only."""

    def __init__(self, secrets: Mapping[str, bytes]) -> None:
        for key_id, secret in secrets.items():
            if len(secret) < MIN_SECRET_BYTES:
                raise ValueError(f"key {key_id!r} is shorter than {MIN_SECRET_BYTES} bytes")
        self._secrets = dict(secrets)
        self._derived: dict[tuple[str, str], bytes] = {}

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._secrets

    def __repr__(self) -> str:
        return f"KeyRing(ids={sorted(self._secrets)})"

    @property
    def ids(self) -> list[str]:
        return sorted(self._secrets)

    def secret(self, key_id: str) -> bytes:
        try:
            return self._secrets[key_id]
        except KeyError:
            raise MissingKeyError(key_id) from None

    def derive(self, key_id: str, purpose: str, length: int = 32) -> bytes:
        """A subkey of ``key_id`` for one ``purpose`` (e.g. ``"hmac"``, ``"aes-gcm:payments"``)."""
        cached = self._derived.get((key_id, purpose))
        if cached is None or len(cached) != length:
            cached = HKDF(
                algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode()
            ).derive(self.secret(key_id))
            self._derived[(key_id, purpose)] = cached
        return cached
