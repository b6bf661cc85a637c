"""Checkpoints read from ``R.audit.checkpoints``: the auditor's copy, which survives a truncation.

Only checkpoints that are well-formed and signed by a trusted key are used to judge the chain;
the others are findings of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.audit.checkpoint import CheckpointPayload, check_checkpoint
from pipeline.audit.entry import AuditEntry, EntryError
from pipeline.audit.report import Finding

Record = tuple[int, int, bytes]


@dataclass(frozen=True)
class ExternalCheckpoint:
    """A trusted checkpoint entry and where it was read."""

    entry: AuditEntry
    payload: CheckpointPayload
    value: bytes
    source_partition: int
    offset: int


def payload_mismatch(entry: AuditEntry, payload: CheckpointPayload) -> str | None:
    """Why a checkpoint payload does not describe the entry that carries it, or ``None``."""
    if (payload.topic, payload.partition) != (entry.topic, entry.partition):
        return "checkpoint payload names another topic or partition than its entry"
    if payload.seq != entry.seq - 1:
        return f"checkpoint covers seq {payload.seq} but sits at seq {entry.seq}"
    if payload.head != entry.prev:
        return "checkpoint head is not the hash of the entry before it"
    if payload.at != entry.at:
        return "checkpoint payload time differs from its entry's time"
    return None


class ExternalCheckpoints:
    """Trusted external checkpoints by audit partition and by the seq of the checkpoint entry."""

    def __init__(self, topic: str | None) -> None:
        self.topic = topic
        self.findings: list[Finding] = []
        self._by_partition: dict[int, dict[int, ExternalCheckpoint]] = {}

    @classmethod
    def load(
        cls,
        records: Iterable[Record],
        public_keys: Mapping[str, Ed25519PublicKey],
        topic: str | None = None,
    ) -> ExternalCheckpoints:
        """Read every checkpoint record; bad ones become findings, good ones are indexed."""
        external = cls(topic)
        for source_partition, offset, value in records:
            external._admit(source_partition, offset, value, public_keys)
        return external

    def partitions(self) -> set[int]:
        return set(self._by_partition)

    def at_entry_seq(self, partition: int, seq: int) -> ExternalCheckpoint | None:
        """The checkpoint whose own entry has ``seq``."""
        return self._by_partition.get(partition, {}).get(seq)

    def covering(self, partition: int, seq: int) -> ExternalCheckpoint | None:
        """The checkpoint whose last covered entry is ``seq``."""
        return self.at_entry_seq(partition, seq + 1)

    def latest(self, partition: int) -> ExternalCheckpoint | None:
        by_seq = self._by_partition.get(partition)
        return by_seq[max(by_seq)] if by_seq else None

    def _admit(
        self, source_partition: int, offset: int, value: bytes,
        public_keys: Mapping[str, Ed25519PublicKey],
    ) -> None:
        def finding(kind: str, detail: str, entry: AuditEntry | None = None, **ids) -> None:
            self.findings.append(Finding(
                kind=kind, detail=detail, source="checkpoints", source_partition=source_partition,
                offset=offset, partition=entry.partition if entry else None,
                seq=entry.seq if entry else ids.get("seq"),
            ))

        try:
            entry = AuditEntry.from_bytes(value)
        except EntryError as exc:
            return finding(exc.kind, exc.detail, seq=exc.seq)
        if entry.kind != "checkpoint":
            return finding("unparseable", "record is not a checkpoint entry", entry)
        if self.topic is None:
            self.topic = entry.topic
        if entry.topic != self.topic:
            return finding("checkpoint_mismatch", f"checkpoint is for topic {entry.topic!r}", entry)
        try:
            payload = check_checkpoint(entry.body, public_keys)
        except EntryError as exc:
            return finding(exc.kind, exc.detail, entry)
        problem = payload_mismatch(entry, payload)
        if problem:
            return finding("checkpoint_mismatch", problem, entry)
        by_seq = self._by_partition.setdefault(entry.partition, {})
        known = by_seq.get(entry.seq)
        if known is not None and known.value != value:
            return finding("checkpoint_mismatch",
                           f"two different signed checkpoints for seq {entry.seq} (fork)", entry)
        by_seq[entry.seq] = ExternalCheckpoint(entry, payload, value, source_partition, offset)
        return None
