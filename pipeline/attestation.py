"""Attestations: an Ed25519 signature on every record the topology writes to a cleared or egress topic.

A consumer that checks them (``pipeline.consumer``, ``residency verify-topic``) catches a record
written straight to a cleared topic by someone bypassing the topology. The signature covers the
topic, the event id, the policy hash, the key and the value, so a record copied from ``R.cleared.D``
into a profile topic (whose masking is stricter) does not verify either.

Two header formats verify:

- ``v1:<key id>:<base64 signature>``: the signature of the record's own message (older records);
- ``v2:<key id>:<base64 signature>:<index>:<count>:<base64 path>``, what the topology writes now:
  the records sent together (up to :data:`BATCH_LEAVES`) are the leaves of a Merkle tree, and one
  signature covers its root and leaf count. A record carries its leaf index and the sibling hashes
  from its leaf to the root, so it verifies on its own. Signing cost 55-60 µs per record on the
  2-core box (docs/benchmarks.md, session 4), ~10% of a worker's CPU; now once per batch. A
  verifier that remembers the roots it has checked (:class:`VerifiedRoots`) pays one signature check
  per batch instead of one (~175 µs) per record.

Leaves and nodes are domain-separated (``0x00 || message`` and ``0x01 || left || right``, hashed
with SHA-256, as in RFC 6962); a node without a sibling (the last one of an odd level) moves up
unchanged. The count is signed with the root, so the tree's shape, and the path length a record
must carry, are fixed by the signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.audit.signing import Signer, signature_is_valid

ATTESTATION_HEADER = "residency-attestation"  # see the module doc for its two formats
EVENT_ID_HEADER = "event-id"
POLICY_HASH_HEADER = "policy-hash"
_PREFIX = b"residency-attestation/v1"
_ROOT_PREFIX = b"residency-attestation/v2-root"
BATCH_LEAVES = 32  # records per signature: a path of at most 5 hashes (216 base64 characters)
_MAX_LEAVES = 4096  # what a verifier accepts (a bound on the path it walks)
_HASH = 32
VERDICTS = ("ok", "unsigned", "bad_signature", "unknown_key", "malformed")


_U32 = struct.Struct(">I").pack
_MISSING = b"\xff\xff\xff\xff"


def attestation_message(topic: str, event_id: str, policy_hash: str, key: bytes | None,
                        value: bytes | None) -> bytes:
    """The signed bytes: each field length-prefixed (big-endian u32; a missing key as 0xFFFFFFFF)."""
    parts = [_PREFIX]
    for data in (topic.encode(), event_id.encode(), policy_hash.encode(), key, value):
        if data is None:
            parts.append(_MISSING)
        else:
            parts += (_U32(len(data)), data)
    return b"".join(parts)


def _leaf(message: bytes) -> bytes:
    digest = hashlib.sha256(b"\x00")
    digest.update(message)  # not b"\x00" + message: a copy of the record's value saved
    return digest.digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves first; the last level is the root alone."""
    levels = [leaves]
    while len(levels[-1]) > 1:
        level = levels[-1]
        up = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            up.append(level[-1])  # no sibling: moves up unchanged
        levels.append(up)
    return levels


def _path(levels: list[list[bytes]], index: int) -> bytes:
    """The siblings from leaf ``index`` to the root, concatenated (none where a node moves up alone)."""
    siblings = []
    for level in levels[:-1]:
        if index ^ 1 < len(level):
            siblings.append(level[index ^ 1])
        index //= 2
    return b"".join(siblings)


def merkle_root(leaf: bytes, index: int, count: int, path: bytes) -> bytes | None:
    """The root that leaf ``index`` of ``count`` and its ``path`` lead to; ``None`` if the path's
    length does not fit that shape."""
    node, used = leaf, 0
    while count > 1:
        if index ^ 1 < count:
            sibling = path[used:used + _HASH]
            if len(sibling) != _HASH:
                return None
            used += _HASH
            node = _node(sibling, node) if index & 1 else _node(node, sibling)
        index, count = index // 2, (count + 1) // 2
    return node if used == len(path) else None


def root_message(root: bytes, count: int) -> bytes:
    """What a v2 signature signs."""
    return _ROOT_PREFIX + struct.pack(">I", count) + root


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Attestor:
    """Signs records with the fleet's attestation key (``RESIDENCY_ATTESTATION_KEY``)."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self.key_id = signer.key_id

    def __repr__(self) -> str:
        return f"Attestor(key_id={self.key_id!r})"

    def headers(self, messages: Sequence[bytes]) -> list[bytes]:
        """One v2 header per :func:`attestation_message`, in order; one signature per
        :data:`BATCH_LEAVES` messages."""
        headers = []
        for start in range(0, len(messages), BATCH_LEAVES):
            chunk = messages[start:start + BATCH_LEAVES]
            levels = _levels([_leaf(m) for m in chunk])
            signature = _b64(self._signer.sign(root_message(levels[-1][0], len(chunk))))
            prefix = f"v2:{self.key_id}:{signature}:"
            headers.extend(f"{prefix}{i}:{len(chunk)}:{_b64(_path(levels, i))}".encode() for i in range(len(chunk)))
        return headers

    def header(self, topic: str, event_id: str, policy_hash: str, key: bytes | None, value: bytes | None) -> bytes:
        """The header of one record sent on its own."""
        return self.headers([attestation_message(topic, event_id, policy_hash, key, value)])[0]

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


class VerifiedRoots:
    """The v2 signatures a verifier has checked already, so a batch's records cost one check.

    Holds ``(key id, signature, signed message)`` of valid signatures only; forgets everything when
    it reaches ``limit`` entries.
    """

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._seen: set[tuple[str, bytes, bytes]] = set()

    def valid(self, public_key: Ed25519PublicKey, key_id: str, signature: bytes, message: bytes) -> bool:
        entry = (key_id, signature, message)
        if entry in self._seen:
            return True
        if not signature_is_valid(public_key, signature, message):
            return False
        if len(self._seen) >= self.limit:
            self._seen.clear()
        self._seen.add(entry)
        return True


def _count(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 5 else None


def verify_record(topic: str, key: bytes | None, value: bytes | None, headers: Any,
                  trusted: dict[str, Ed25519PublicKey], roots: VerifiedRoots | None = None) -> Verdict:
    """Whether a consumed record carries a valid attestation from one of the ``trusted`` keys.

    ``roots``: the v2 signatures verified so far (pass the same one for a whole topic or stream).
    """
    headers = list(headers or ())
    raw = [v for k, v in headers if k == ATTESTATION_HEADER]
    if not raw:
        return Verdict("unsigned")
    event_id, policy_hash = _one(headers, EVENT_ID_HEADER), _one(headers, POLICY_HASH_HEADER)
    if len(raw) > 1 or event_id is None or policy_hash is None:
        return Verdict("malformed")
    try:
        version, key_id, rest = raw[0].decode("ascii").split(":", 2)
        message = attestation_message(topic, event_id.decode(), policy_hash.decode(), key, value)
        if version == "v1":
            signature, signed = base64.b64decode(rest, validate=True), message
        elif version == "v2":
            signature_b64, index_text, count_text, path_b64 = rest.split(":")
            signature, path = base64.b64decode(signature_b64, validate=True), base64.b64decode(path_b64, validate=True)
            index, count = _count(index_text), _count(count_text)
            if index is None or count is None or not 0 <= index < count <= _MAX_LEAVES:
                return Verdict("malformed", key_id)
            root = merkle_root(_leaf(message), index, count, path)
            if root is None:
                return Verdict("malformed", key_id)
            signed = root_message(root, count)
        else:
            return Verdict("malformed", key_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return Verdict("malformed")
    public_key = trusted.get(key_id)
    if public_key is None:
        return Verdict("unknown_key", key_id)
    valid = (roots.valid(public_key, key_id, signature, signed) if roots is not None and version == "v2"
             else signature_is_valid(public_key, signature, signed))
    return Verdict("ok", key_id) if valid else Verdict("bad_signature", key_id)
