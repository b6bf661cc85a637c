"""The writer side of the audit chain: one :class:`ChainWriter` per owned partition of ``R.audit``.

Head policy: the head advances as soon as :meth:`ChainWriter.append` or
:meth:`ChainWriter.checkpoint` returns, so the record agent can pipeline sends. If a send fails or its
outcome is unknown, the agent drops the writer and rebuilds it with :meth:`ChainWriter.resume` from
the last record read back from ``R.audit[p]``: the topic, not memory, is the chain head. That is the
same path as a restart after ``kill -9``, so there is one recovery path, not two. It requires a
producer that keeps per-partition order (acks=all, idempotence on), so a failed send is never
followed by a later entry that made it.

A checkpoint is published to ``R.audit.checkpoints`` only after its send to ``R.audit`` is
acknowledged; otherwise a rebuilt writer could reuse its seq and the two streams would disagree.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pipeline.audit.checkpoint import sign_checkpoint
from pipeline.audit.entry import AuditEntry, EntryError, Kind, format_at, genesis_hash, parse_at, valid_at
from pipeline.audit.signing import Signer

__all__ = ["AuditEntry", "ChainResumeError", "ChainWriter", "genesis_hash"]


class ChainResumeError(RuntimeError):
    """The last record of a partition is not a valid entry of this chain; refuse to write."""


class ChainWriter:
    """Appends hash-chained entries to one partition of the audit topic. Not thread-safe."""

    def __init__(self, topic: str, partition: int, head: AuditEntry | None = None) -> None:
        if head is not None and (head.topic != topic or head.partition != partition):
            raise ChainResumeError(
                f"head belongs to {head.topic}[{head.partition}], not {topic}[{partition}]"
            )
        if not (isinstance(topic, str) and topic and type(partition) is int and partition >= 0):
            raise ValueError("an audit chain needs a topic name and a partition number >= 0")
        self.topic = topic
        self.partition = partition
        self._head = head
        self._head_content: dict | None = None  # the last entry appended, until someone asks for it
        self._seq = -1 if head is None else head.seq
        self._hash = genesis_hash(topic, partition) if head is None else head.hash
        self._checked_at = ""  # the last timestamp found valid
        is_checkpoint = head is not None and head.kind == "checkpoint"
        # After a resume from a fragment we do not know how long ago the last checkpoint was,
        # so one is due at once: the new owner signs the head it inherited.
        self._since_checkpoint = 0 if head is None or is_checkpoint else 1
        self._last_checkpoint_at = parse_at(head.at) if is_checkpoint else None

    @classmethod
    def resume(cls, topic: str, partition: int, last_record: bytes | None) -> ChainWriter:
        """A writer continuing the chain after ``last_record`` (``None``: the partition is empty).

        Raises :class:`ChainResumeError` when the record is not a valid entry of this partition:
        appending after it would hide the damage, so the agent must stop and alert instead.
        """
        if last_record is None:
            return cls(topic, partition)
        try:
            head = AuditEntry.from_bytes(last_record)
        except EntryError as exc:
            raise ChainResumeError(
                f"last record of {topic}[{partition}] is not a valid audit entry ({exc.kind})"
            ) from None
        return cls(topic, partition, head)

    @property
    def head(self) -> AuditEntry | None:
        """The last entry appended (or resumed from)."""
        if self._head_content is not None:
            self._head, self._head_content = AuditEntry.model_construct(**self._head_content), None
        return self._head

    @property
    def next_seq(self) -> int:
        return self._seq + 1

    @property
    def head_hash(self) -> str:
        """The hash the next entry links to."""
        return self._hash

    @property
    def entries_since_checkpoint(self) -> int:
        return self._since_checkpoint

    def append(self, body: dict, at: datetime | str) -> bytes:
        """Chain a provenance fragment; returns the record value to produce to ``R.audit[p]``.

        ``body`` must carry a string ``event_id`` and must hold no raw payload values.
        """
        if not isinstance(body, dict) or not isinstance(body.get("event_id"), str):
            raise ValueError("a provenance fragment needs a string event_id")
        value = self._extend("fragment", body, format_at(at))
        self._since_checkpoint += 1
        return value

    def checkpoint(self, signer: Signer, at: datetime | str) -> bytes:
        """Chain a signed checkpoint over every entry so far; returns the record value.

        Produce the same bytes to ``R.audit[p]`` and, once acknowledged, to ``R.audit.checkpoints``.
        """
        text = format_at(at)
        payload = sign_checkpoint(
            signer, topic=self.topic, partition=self.partition, seq=self.next_seq - 1,
            head=self.head_hash, at=text,
        )
        value = self._extend("checkpoint", payload.model_dump(), text)
        self._since_checkpoint = 0
        self._last_checkpoint_at = parse_at(text)
        return value

    def checkpoint_due(self, now: datetime, *, every_entries: int, every_seconds: float) -> bool:
        """Whether a checkpoint should be appended now (N entries or T seconds since the last)."""
        if self._since_checkpoint == 0:
            return False
        if self._since_checkpoint >= every_entries or self._last_checkpoint_at is None:
            return True
        return now - self._last_checkpoint_at >= timedelta(seconds=every_seconds)

    def _extend(self, kind: Kind, body: dict, at: str) -> bytes:
        # topic and partition were checked once, seq and prev are the writer's own; the timestamp
        # is checked once per value (a batch shares one) and the body must be an object
        checked = type(body) is dict and (at == self._checked_at or valid_at(at))
        content, value = AuditEntry.build_bytes(
            topic=self.topic, partition=self.partition, seq=self.next_seq,
            prev=self.head_hash, at=at, kind=kind, body=body, checked=checked,
        )
        if checked:
            self._checked_at = at
        self._head_content, self._seq, self._hash = content, content["seq"], content["hash"]
        return value
