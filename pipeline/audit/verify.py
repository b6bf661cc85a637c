"""Verify the audit chain as read from ``R.audit`` (or a bundle) against the signed checkpoints.

Each partition is one chain. Without a window the chain must start at genesis (seq 0). With
``since``, it may start at a trusted checkpoint made at or before ``since`` (an inline checkpoint
entry, or an entry whose ``prev`` a checkpoint from ``R.audit.checkpoints`` vouches for): verifying
a window needs the entries from the last checkpoint before ``since``, which the bundle export
includes. Entries outside the window are verified but counted as context only.

Verification of a partition stops at its first bad record, which is named; counts cover the
entries verified before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.audit.checkpoint import check_checkpoint
from pipeline.audit.entry import AuditEntry, EntryError, genesis_hash
from pipeline.audit.external import ExternalCheckpoints, Record, payload_mismatch
from pipeline.audit.report import Counts, Finding, Report


def verify(
    records: Iterable[Record],
    checkpoints: Iterable[Record],
    public_keys: Mapping[str, Ed25519PublicKey],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    topic: str | None = None,
) -> Report:
    """Verify ``records`` (``(partition, offset, value)`` in offset order per partition).

    ``checkpoints`` are the ``(partition, offset, value)`` records of ``R.audit.checkpoints``;
    ``public_keys`` the trusted keys by key id. ``topic`` defaults to the topic the entries name.
    """
    for bound in (since, until):
        if bound is not None and bound.tzinfo is None:
            raise ValueError("since and until must be timezone-aware")
    external = ExternalCheckpoints.load(checkpoints, public_keys, topic)
    context = _Context(topic or external.topic, public_keys, external, since, until)
    checks: dict[int, _PartitionCheck] = {}
    for partition, offset, value in records:
        check = checks.get(partition)
        if check is None:
            check = checks[partition] = _PartitionCheck(partition, context)
        check.feed(offset, value)
    for partition in external.partitions() - checks.keys():
        checks[partition] = _PartitionCheck(partition, context)
    findings = [finding for check in checks.values() if (finding := check.finish())]
    findings = sorted(findings + external.findings, key=Finding.sort_key)
    context.counts.partitions = sum(1 for check in checks.values() if check.seen_offset is not None)
    context.counts.event_ids = len(context.event_ids)
    return Report(counts=context.counts, errors=findings, since=since, until=until,
                  topic=context.topic)


@dataclass
class _Context:
    topic: str | None
    keys: Mapping[str, Ed25519PublicKey]
    external: ExternalCheckpoints
    since: datetime | None
    until: datetime | None
    counts: Counts = field(default_factory=Counts)
    event_ids: set[str] = field(default_factory=set)

    def tally(self, entry: AuditEntry) -> None:
        at = entry.at_datetime
        if (self.since and at < self.since) or (self.until and at > self.until):
            self.counts.context_entries += 1
            return
        self.counts.entries += 1
        if entry.kind == "checkpoint":
            self.counts.checkpoints += 1
            return
        self.counts.fragments += 1
        if entry.event_id is not None:
            self.event_ids.add(entry.event_id)


@dataclass
class _Gap:
    """A seq jump whose kind (missing or reordered) is known only after the rest is read."""

    offset: int
    entry: AuditEntry
    expected: int


class _PartitionCheck:
    """The chain state of one partition while its records stream past."""

    def __init__(self, partition: int, context: _Context) -> None:
        self.partition = partition
        self.context = context
        self.finding: Finding | None = None
        self.gap: _Gap | None = None
        self.last: AuditEntry | None = None
        self.last_offset: int | None = None
        self.seen_offset: int | None = None
        self.vouched_seq = -1  # last seq whose hash a trusted checkpoint confirmed

    def feed(self, offset: int, value: bytes) -> None:
        if self.finding is not None:
            return
        if self.gap is not None:
            return self._classify_gap(offset, value)
        if self.seen_offset is not None and offset <= self.seen_offset:
            return self._fail("reordered", f"offset {offset} comes after offset {self.seen_offset}",
                              offset)
        self.seen_offset = offset
        try:
            entry = AuditEntry.from_bytes(value)
        except EntryError as exc:
            return self._fail(exc.kind, exc.detail, offset, seq=exc.seq, event_id=exc.event_id)
        if self.context.topic is None:
            self.context.topic = entry.topic
        self.finding = self._check(entry, offset, value)
        if self.finding is None and self.gap is None:
            self.last, self.last_offset = entry, offset
            self.context.tally(entry)

    def finish(self) -> Finding | None:
        """The first bad record of this partition, once every record has been fed."""
        if self.finding is None and self.gap is not None:
            gap = self.gap
            absent = f"seq {gap.expected}" if gap.expected == gap.entry.seq - 1 else (
                f"seqs {gap.expected}..{gap.entry.seq - 1}")
            self.finding = self._at(gap.entry, gap.offset, "missing", (
                f"{absent} not present: this entry links to an entry that is not there"))
        if self.finding is None:
            self._check_truncation()
        return self.finding

    def _check(self, entry: AuditEntry, offset: int, value: bytes) -> Finding | None:
        if (entry.topic, entry.partition) != (self.context.topic, self.partition):
            return self._at(entry, offset, "modified",
                            f"entry claims to belong to {entry.topic}[{entry.partition}]")
        if self.last is None:
            finding = self._check_anchor(entry, offset)
        else:
            finding = self._check_link(entry, offset)
        if finding is not None or self.gap is not None:
            return finding
        if entry.kind == "checkpoint":
            finding = self._check_inline_checkpoint(entry, offset)
        return finding or self._check_external(entry, offset, value)

    def _check_anchor(self, entry: AuditEntry, offset: int) -> Finding | None:
        if entry.seq == 0:
            if entry.prev != genesis_hash(entry.topic, entry.partition):
                return self._at(entry, offset, "modified", "seq 0 does not link to the genesis value")
            return None
        since = self.context.since
        if since is None:  # a full verification starts at genesis: seq 0 is missing or moved
            self.gap = _Gap(offset, entry, 0)
            return None
        anchor_at = self._anchor_time(entry)
        if anchor_at is None:
            return self._at(entry, offset, "missing", (
                f"the chain starts at seq {entry.seq} and no trusted checkpoint vouches for "
                "the entry before it"))
        if anchor_at > since:
            return self._at(entry, offset, "missing", (
                "the first checkpoint present was made after since: entries in the window "
                "before it are not covered"))
        return None

    def _anchor_time(self, entry: AuditEntry) -> datetime | None:
        external = self.context.external
        before = external.at_entry_seq(self.partition, entry.seq - 1)
        if before is not None and before.entry.hash == entry.prev:  # right after a checkpoint
            return before.entry.at_datetime
        vouch = external.covering(self.partition, entry.seq - 1)
        if vouch is not None and vouch.payload.head == entry.prev:
            return vouch.entry.at_datetime
        if entry.kind == "checkpoint":  # its signature and head are checked right after
            return entry.at_datetime
        return None

    def _check_link(self, entry: AuditEntry, offset: int) -> Finding | None:
        last = self.last
        expected = last.seq + 1
        if entry.seq == expected:
            if entry.prev == last.hash:
                return None
            return self._at(last, self.last_offset, "modified", (
                f"the next entry (offset {offset}, seq {entry.seq}) links to another hash: this "
                "entry was rewritten, or an entry after it removed and the next one renumbered"))
        if entry.seq > expected:
            self.gap = _Gap(offset, entry, expected)
            return None
        return self._at(entry, offset, "reordered", f"seq {entry.seq} comes after seq {last.seq}")

    def _classify_gap(self, offset: int, value: bytes) -> None:
        gap = self.gap
        backwards = self.seen_offset is not None and offset <= self.seen_offset
        self.seen_offset = max(offset, self.seen_offset or offset)
        try:
            seq = AuditEntry.from_bytes(value).seq
        except EntryError as exc:
            seq = exc.seq
        if backwards or (seq is not None and gap.expected <= seq < gap.entry.seq):
            self.finding = self._at(gap.entry, gap.offset, "reordered", (
                f"seq {gap.entry.seq} stands where seq {gap.expected} belongs; "
                f"an earlier seq follows at offset {offset}"))

    def _check_inline_checkpoint(self, entry: AuditEntry, offset: int) -> Finding | None:
        try:
            payload = check_checkpoint(entry.body, self.context.keys)
        except EntryError as exc:
            return self._at(entry, offset, exc.kind, exc.detail)
        problem = payload_mismatch(entry, payload)
        if problem:
            return self._at(entry, offset, "checkpoint_mismatch", f"{problem}; {self._rewritten()}")
        self.vouched_seq = entry.seq  # every field of a checkpoint entry is signed or derived
        return None

    def _check_external(self, entry: AuditEntry, offset: int, value: bytes) -> Finding | None:
        external = self.context.external
        own = external.at_entry_seq(self.partition, entry.seq)
        if own is not None and own.value != value:
            return self._at(entry, offset, "checkpoint_mismatch", (
                "entry differs from the checkpoint published for this seq at R.audit.checkpoints "
                f"partition {own.source_partition} offset {own.offset}"))
        cover = external.covering(self.partition, entry.seq)
        if cover is not None:
            if cover.payload.head != entry.hash:
                return self._at(entry, offset, "checkpoint_mismatch", (
                    f"the checkpoint at R.audit.checkpoints partition {cover.source_partition} "
                    f"offset {cover.offset} signs another head for this seq; {self._rewritten()}"))
            self.vouched_seq = entry.seq
        return None

    def _check_truncation(self) -> None:
        latest = self.context.external.latest(self.partition)
        last_seq = self.last.seq if self.last is not None else -1
        if latest is None or latest.entry.seq <= last_seq:
            return
        end = f"after offset {self.last_offset}" if self.last is not None else "with no entries"
        self.finding = Finding(
            kind="truncated", partition=self.partition, seq=last_seq + 1, detail=(
                f"the checkpoint at R.audit.checkpoints partition {latest.source_partition} "
                f"offset {latest.offset} has seq {latest.entry.seq}, but the chain ends {end} "
                f"at seq {last_seq}"))

    def _rewritten(self) -> str:
        return f"the chain was rewritten somewhere after seq {self.vouched_seq}"

    def _at(self, entry: AuditEntry, offset: int | None, kind: str, detail: str) -> Finding:
        return Finding(kind=kind, detail=detail, partition=self.partition, offset=offset,
                       seq=entry.seq, event_id=entry.event_id)

    def _fail(self, kind: str, detail: str, offset: int, *, seq: int | None = None,
              event_id: str | None = None) -> None:
        self.finding = Finding(kind=kind, detail=detail, partition=self.partition, offset=offset,
                               seq=seq, event_id=event_id)
