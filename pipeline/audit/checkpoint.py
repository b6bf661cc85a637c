"""Signed checkpoints: a statement by a key holder that ``R.audit[p]`` had head ``head`` at ``seq``.

The signature covers ``CHECKPOINT_LABEL + b"\\0" + canonical(payload without "signature")``; the label
keeps a signature made here from being valid for any other message the key might sign.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.audit.entry import HEX64, RFC3339_UTC, EntryError, canonical
from pipeline.audit.signing import Signer, signature_is_valid

CHECKPOINT_LABEL = b"residency.audit.checkpoint.v1"


class CheckpointPayload(BaseModel):
    """The body of a checkpoint entry. ``seq`` is the last covered entry, ``count`` = ``seq + 1``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    topic: str = Field(min_length=1)
    partition: int = Field(ge=0)
    seq: int = Field(ge=-1)
    head: str = Field(pattern=HEX64)
    count: int = Field(ge=0)
    at: str = Field(pattern=RFC3339_UTC)
    key_id: str = Field(min_length=1)
    signature: str

    def signed_message(self) -> bytes:
        """The exact bytes the signature covers."""
        return CHECKPOINT_LABEL + b"\x00" + canonical(self.model_dump(exclude={"signature"}))


def sign_checkpoint(
    signer: Signer, *, topic: str, partition: int, seq: int, head: str, at: str
) -> CheckpointPayload:
    """A checkpoint over entries ``0..seq`` of ``topic[partition]`` whose last hash is ``head``."""
    unsigned = CheckpointPayload(
        topic=topic, partition=partition, seq=seq, head=head, count=seq + 1, at=at,
        key_id=signer.key_id, signature="",
    )
    signature = base64.b64encode(signer.sign(unsigned.signed_message())).decode("ascii")
    return unsigned.model_copy(update={"signature": signature})


def check_checkpoint(body: dict, public_keys: Mapping[str, Ed25519PublicKey]) -> CheckpointPayload:
    """The payload if ``body`` is a well-formed checkpoint signed by a trusted key.

    Raises :class:`EntryError` with kind ``checkpoint_mismatch`` (malformed) or
    ``bad_checkpoint_signature`` (invalid signature, or a key id that is not trusted).
    """
    try:
        payload = CheckpointPayload.model_validate(body)
    except ValidationError:
        raise EntryError("checkpoint_mismatch", "checkpoint body is not a checkpoint payload") from None
    key = public_keys.get(payload.key_id)
    if key is None:
        raise EntryError("bad_checkpoint_signature",
                         f"signed by key id {payload.key_id!r}, which is not a trusted key")
    try:
        signature = base64.b64decode(payload.signature, validate=True)
    except (binascii.Error, ValueError):
        raise EntryError("bad_checkpoint_signature", "signature is not base64") from None
    if not signature_is_valid(key, signature, payload.signed_message()):
        raise EntryError("bad_checkpoint_signature",
                         f"signature does not verify under key id {payload.key_id!r}")
    if payload.count != payload.seq + 1:
        raise EntryError("checkpoint_mismatch", "checkpoint count is not seq + 1")
    return payload
