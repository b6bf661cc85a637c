"""Attestations: an Ed25519 signature on every record the topology writes to a cleared or egress topic.

A consumer that checks them (``pipeline.consumer``, ``residency verify-topic``) catches a record
written straight to a cleared topic by someone bypassing the topology. The signature covers the
topic, the event id, the policy hash, the key and the value, so a record copied from ``R.cleared.D``
into a profile topic (whose masking is stricter) does not verify either.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.audit.signing import Signer, signature_is_valid

ATTESTATION_HEADER = "residency-attestation"  # "v1:<key id>:<base64 signature>"
EVENT_ID_HEADER = "event-id"
POLICY_HASH_HEADER = "policy-hash"
_PREFIX = b"residency-attestation/v1"
VERDICTS = ("ok", "unsigned", "bad_signature", "unknown_key", "malformed")


def _field(data: bytes | None) -> bytes:
    return b"\xff\xff\xff\xff" if data is None else struct.pack(">I", len(data)) + data


def attestation_message(topic: str, event_id: str, policy_hash: str, key: bytes | None,
                        value: bytes | None) -> bytes:
    """The signed bytes: each field length-prefixed (big-endian u32; a missing key as 0xFFFFFFFF)."""
    return _PREFIX + b"".join(_field(x) for x in (topic.encode(), event_id.encode(), policy_hash.encode(), key, value))


class Attestor:
    """Signs records with the fleet's attestation key (``RESIDENCY_ATTESTATION_KEY``)."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self.key_id = signer.key_id

    def __repr__(self) -> str:
        return f"Attestor(key_id={self.key_id!r})"

    def header(self, topic: str, event_id: str, policy_hash: str, key: bytes | None, value: bytes | None) -> bytes:
        signature = self._signer.sign(attestation_message(topic, event_id, policy_hash, key, value))
        return f"v1:{self.key_id}:{base64.b64encode(signature).decode()}".encode()

    def public_key_pem(self) -> str:
        return self._signer.public_key_pem()


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str  # one of VERDICTS
    key_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _one(headers: list[tuple[str, bytes]], name: str) -> bytes | None:
    found = [v for k, v in headers if k == name]
    return found[0] if len(found) == 1 else None


def verify_record(topic: str, key: bytes | None, value: bytes | None, headers: Any,
                  trusted: dict[str, Ed25519PublicKey]) -> Verdict:
    """Whether a consumed record carries a valid attestation from one of the ``trusted`` keys."""
    headers = list(headers or ())
    raw = [v for k, v in headers if k == ATTESTATION_HEADER]
    if not raw:
        return Verdict("unsigned")
    event_id, policy_hash = _one(headers, EVENT_ID_HEADER), _one(headers, POLICY_HASH_HEADER)
    if len(raw) > 1 or event_id is None or policy_hash is None:
        return Verdict("malformed")
    try:
        version, key_id, signature_b64 = raw[0].decode("ascii").split(":", 2)
        signature = base64.b64decode(signature_b64, validate=True)
        message = attestation_message(topic, event_id.decode(), policy_hash.decode(), key, value)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return Verdict("malformed")
    if version != "v1":
        return Verdict("malformed", key_id)
    public_key = trusted.get(key_id)
    if public_key is None:
        return Verdict("unknown_key", key_id)
    if not signature_is_valid(public_key, signature, message):
        return Verdict("bad_signature", key_id)
    return Verdict("ok", key_id)
