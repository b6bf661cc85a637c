"""The audit entry: its canonical bytes, its hash, and strict decoding for verifiers.

An entry on ``R.audit[p]`` is the canonical JSON (orjson, sorted keys, no whitespace) of::

    {"at", "body", "hash", "kind", "partition", "prev", "seq", "topic", "v"}

``hash`` is the hex SHA-256 of the canonical bytes of the entry *without* ``hash``; ``prev`` is the
``hash`` of the entry at ``seq - 1``, or for ``seq`` 0 the genesis value of the topic and partition.
A decoder accepts a value only if it is exactly the canonical encoding of what it parses to, so any
change of any byte is either unparseable, non-canonical or a hash mismatch.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

FORMAT_VERSION = 1
GENESIS_LABEL = b"residency.audit.genesis.v1"
HEX64 = r"^[0-9a-f]{64}$"
RFC3339_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$"

Kind = Literal["fragment", "checkpoint"]
KINDS = ("fragment", "checkpoint")
FIELDS = frozenset({"v", "topic", "partition", "seq", "prev", "at", "kind", "body", "hash"})
_HEX64 = re.compile(HEX64)
_RFC3339_UTC = re.compile(RFC3339_UTC)


class EntryError(ValueError):
    """A value is not a valid audit entry. ``kind`` is a verifier finding kind; never holds payloads."""

    def __init__(
        self, kind: str, detail: str, *, seq: int | None = None, event_id: str | None = None
    ) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.seq = seq
        self.event_id = event_id


def canonical(obj: Any) -> bytes:
    """Reproducible JSON bytes: orjson with sorted keys and no whitespace."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def genesis_hash(topic: str, partition: int) -> str:
    """The ``prev`` of seq 0: binds the chain to its topic and partition."""
    return sha256_hex(b"\x00".join([GENESIS_LABEL, topic.encode(), str(partition).encode()]))


def format_at(at: datetime | str) -> str:
    """``at`` as RFC 3339 UTC with microseconds (``2024-05-01T12:00:00.000000Z``)."""
    if isinstance(at, str):
        parse_at(at)
        return at
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_at(text: str) -> datetime:
    """An RFC 3339 UTC timestamp (``...Z``) as an aware datetime."""
    if not isinstance(text, str) or not text.endswith("Z"):
        raise ValueError("timestamp must be RFC 3339 UTC ending in 'Z'")
    return datetime.fromisoformat(text[:-1] + "+00:00")


class AuditEntry(BaseModel):
    """One record of the chain on ``R.audit[partition]``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    v: Literal[1] = FORMAT_VERSION
    topic: str = Field(min_length=1)
    partition: int = Field(ge=0)
    seq: int = Field(ge=0)
    prev: str = Field(pattern=HEX64)
    at: str = Field(pattern=RFC3339_UTC)
    kind: Kind
    body: dict[str, Any]
    hash: str = Field(pattern=HEX64)

    @classmethod
    def build(
        cls, *, topic: str, partition: int, seq: int, prev: str, at: str, kind: Kind, body: dict
    ) -> AuditEntry:
        """A new entry with its hash computed."""
        content = {
            "v": FORMAT_VERSION, "topic": topic, "partition": partition, "seq": seq,
            "prev": prev, "at": at, "kind": kind, "body": body,
        }
        return cls(**content, hash=sha256_hex(canonical(content)))

    @classmethod
    def build_bytes(
        cls, *, topic: str, partition: int, seq: int, prev: str, at: str, kind: Kind, body: dict,
        checked: bool = False,
    ) -> tuple[dict, bytes]:
        """The content (with ``hash``) and canonical bytes of a new entry: :meth:`build` and
        :meth:`to_bytes` in one, for the writer's hot path, with the body encoded once and no model.

        The fields are checked as the strict model checks them, unless ``checked`` says the caller
        did (a :class:`~pipeline.audit.chain.ChainWriter` knows its topic, sequence and hashes)."""
        content = {
            "v": FORMAT_VERSION, "topic": topic, "partition": partition, "seq": seq,
            "prev": prev, "at": at, "kind": kind, "body": body,
        }
        if not checked and not _plain(content, with_hash=False):
            entry = cls.build(topic=topic, partition=partition, seq=seq, prev=prev, at=at, kind=kind, body=body)
            return entry.model_dump(), entry.to_bytes()  # the model says what is wrong (or accepts it)
        first = b'{"at":' + orjson.dumps(at) + b',"body":' + canonical(body)
        rest = _after_hash(content)
        digest = sha256_hex(first + rest)  # the canonical encoding without "hash", which sorts after "body"
        content["hash"] = digest
        return content, first + b',"hash":"' + digest.encode() + b'"' + rest

    @classmethod
    def from_bytes(cls, value: bytes) -> AuditEntry:
        """Decode and check one record value; raises :class:`EntryError` (unparseable, modified).

        The common case (a well-formed entry) is checked without building the model twice: the
        fields are checked as the strict model checks them, the bytes against their canonical
        encoding and the hash; anything else takes the model's path, which names what is wrong.
        ``tests/unit/test_audit_entry_fast.py`` holds both paths to the same verdicts.
        """
        raw = _load_object(value)
        if _plain(raw, with_hash=True) and canonical(raw) == value:
            # canonical, so "hash" sits between the body and the fields after it: the bytes
            # without it are the value with that one stretch cut out
            rest = _after_hash(raw)
            cut = b',"hash":"' + raw["hash"].encode() + b'"' + rest
            if not value.endswith(cut):  # cannot happen for a canonical value; the model's path decides
                return cls._from_object(raw, value)
            if sha256_hex(value[:-len(cut)] + rest) != raw["hash"]:
                raise EntryError("modified", "hash does not match the entry's content",
                                 seq=raw["seq"], event_id=_fragment_event_id(raw))
            return cls.model_construct(**raw)
        return cls._from_object(raw, value)

    @classmethod
    def _from_object(cls, raw: dict, value: bytes) -> AuditEntry:
        """The model's path of :meth:`from_bytes` (strict validation, then canonical bytes, then hash)."""
        try:
            entry = cls.model_validate(raw)
        except ValidationError as exc:
            fields = sorted({".".join(str(part) for part in err["loc"]) for err in exc.errors()})
            kind = "modified" if {"hash", "seq", "prev"} <= raw.keys() else "unparseable"
            raise EntryError(kind, f"not a valid audit entry (fields: {', '.join(fields)})",
                             **_best_effort_ids(raw)) from None
        if entry.to_bytes() != value:
            raise EntryError("modified", "bytes are not the canonical encoding of the entry",
                             seq=entry.seq, event_id=entry.event_id)
        if entry.computed_hash() != entry.hash:
            raise EntryError("modified", "hash does not match the entry's content",
                             seq=entry.seq, event_id=entry.event_id)
        return entry

    def computed_hash(self) -> str:
        """SHA-256 of the canonical bytes of the entry without its ``hash`` field."""
        return sha256_hex(canonical(self.model_dump(exclude={"hash"})))

    def to_bytes(self) -> bytes:
        """The exact bytes produced to ``R.audit``."""
        return canonical(self.model_dump())

    @property
    def event_id(self) -> str | None:
        """The event id of a fragment, when it has one."""
        value = self.body.get("event_id") if self.kind == "fragment" else None
        return value if isinstance(value, str) else None

    @property
    def at_datetime(self) -> datetime:
        return parse_at(self.at)


def _after_hash(content: dict) -> bytes:
    """The canonical encoding of the fields that sort after ``hash``, to the closing brace."""
    return (b',"kind":' + orjson.dumps(content["kind"]) + b',"partition":' + str(content["partition"]).encode()
            + b',"prev":' + orjson.dumps(content["prev"]) + b',"seq":' + str(content["seq"]).encode()
            + b',"topic":' + orjson.dumps(content["topic"]) + b',"v":' + str(content["v"]).encode() + b"}")


def _matches(pattern: re.Pattern, text: Any) -> bool:
    """``text`` is a string matching ``pattern`` as the model's pattern does (``$`` is the very end)."""
    return type(text) is str and pattern.match(text) is not None and text[-1] != "\n"


def valid_at(text: str) -> bool:
    """Whether ``text`` is a timestamp the entry model accepts."""
    return _matches(_RFC3339_UTC, text)


def _int(value: Any) -> bool:
    return type(value) is int  # strict: no bool, no float


def _plain(raw: dict, with_hash: bool) -> bool:
    """Whether ``raw`` passes the strict model exactly as it is (no field the model would refuse)."""
    if raw.keys() != (FIELDS if with_hash else FIELDS - {"hash"}):
        return False
    v, topic, partition, seq = raw["v"], raw["topic"], raw["partition"], raw["seq"]
    prev, at, kind, body = raw["prev"], raw["at"], raw["kind"], raw["body"]
    return (_int(v) and v == FORMAT_VERSION
            and type(topic) is str and len(topic) >= 1
            and _int(partition) and partition >= 0 and _int(seq) and seq >= 0
            and _matches(_HEX64, prev) and valid_at(at)
            and type(kind) is str and kind in KINDS
            and type(body) is dict
            and (not with_hash or _matches(_HEX64, raw["hash"])))


def _fragment_event_id(raw: dict) -> str | None:
    event_id = raw["body"].get("event_id") if raw["kind"] == "fragment" else None
    return event_id if isinstance(event_id, str) else None


def _load_object(value: bytes) -> dict:
    try:
        raw = orjson.loads(value)
    except (orjson.JSONDecodeError, TypeError):
        raise EntryError("unparseable", "value is not JSON") from None
    if not isinstance(raw, dict):
        raise EntryError("unparseable", "value is not a JSON object")
    return raw


def _best_effort_ids(raw: dict) -> dict:
    seq = raw.get("seq")
    body = raw.get("body")
    event_id = body.get("event_id") if isinstance(body, dict) else None
    return {
        "seq": seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        "event_id": event_id if isinstance(event_id, str) else None,
    }
