"""Tail verification of the audit chain, run by every worker: the source of
``residency_audit_verify_failures_total``.

Every ``audit_verify_interval_s`` a worker reads, for each partition of ``R.audit`` it owns, the
records from its last verified checkpoint entry to the end, and checks them with
:func:`pipeline.audit.verify` anchored at that checkpoint (hash links, seqs, the checkpoint
signatures; docs/audit.md). A verified checkpoint becomes the next anchor, so a run re-reads at most
one checkpoint interval of old entries, never the whole trail.

Work is bounded: a run reads at most ``max_records`` records per partition. A partition written
faster than that is not chased: the verifier jumps to the newest ``max_records`` records and logs
how many entries it skipped. The worker guards the recent tail; ``residency audit verify`` is the
complete check.

A bad record is counted once (by finding kind), logged with its coordinates, and verification
resumes at the next checkpoint entry after it, so one tampering raises the counter once rather than
on every run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.audit import AuditEntry, Finding, verify
from pipeline.audit.entry import EntryError

Record = tuple[int, bytes]  # (offset, value) of one partition of R.audit


@dataclass
class TailCursor:
    """Where verification of one partition stands."""

    anchor: int | None = None  # offset of the checkpoint entry (or seq 0) the next run starts at
    anchor_at: datetime | None = None  # that checkpoint's time; None when the anchor is seq 0 (genesis)
    search_from: int | None = None  # without an anchor: look for one from here (None: near the end)
    verified_to: int = -1  # highest offset verified so far (entries are counted once)


@dataclass
class TailResult:
    finding: Finding | None = None
    verified: int = 0  # entries verified for the first time
    skipped: int = 0  # entries never verified because the partition outran the budget


@dataclass
class ReadPlan:
    start: int
    stop: int  # exclusive
    skipped: int = 0


def plan_read(cursor: TailCursor, begin: int, end: int, max_records: int) -> ReadPlan | None:
    """Which offsets of a partition holding ``[begin, end)`` the next run reads (None: nothing new)."""
    if cursor.anchor is not None and cursor.anchor < begin:  # retention removed the anchor
        cursor.anchor = cursor.anchor_at = None
        cursor.search_from = begin
    if cursor.anchor is not None:
        if end - cursor.anchor <= max_records:
            return ReadPlan(cursor.anchor, end) if end > cursor.verified_to + 1 else None
        cursor.anchor = cursor.anchor_at = cursor.search_from = None  # outrun: go to the newest records
    start = max(begin, end - max_records, cursor.search_from or 0)
    floor = max(begin, cursor.verified_to + 1, cursor.search_from or 0)  # a bad record is not "skipped"
    skipped = max(0, start - floor) if cursor.verified_to >= 0 else 0
    return ReadPlan(start, end, skipped) if start < end else None


def truncation(cursor: TailCursor, partition: int, end: int) -> Finding | None:
    """A finding when the partition ends before offsets verified earlier (records removed)."""
    if end > cursor.verified_to:
        return None
    finding = Finding(kind="truncated", partition=partition, offset=end, detail=(
        f"the partition now ends before offset {end}, but offsets up to {cursor.verified_to} were "
        "verified earlier: records were removed"))
    cursor.anchor = cursor.anchor_at = cursor.search_from = None  # start over near the new end
    cursor.verified_to = end - 1
    return finding


def check_tail(
    cursor: TailCursor,
    partition: int,
    records: Sequence[Record],
    *,
    begin: int,
    keys: Mapping[str, Ed25519PublicKey],
    topic: str,
) -> TailResult:
    """Verify ``records`` (consecutive offsets from a :func:`plan_read`) and move ``cursor`` on."""
    if not records:
        return TailResult()
    if cursor.anchor is None and not _find_anchor(cursor, records, begin):
        cursor.search_from = records[-1][0] + 1
        return TailResult()
    chain = [(partition, offset, value) for offset, value in records if offset >= cursor.anchor]
    report = verify(chain, [], keys, since=cursor.anchor_at, topic=topic)
    finding = report.first_error
    last_good = chain[-1][1] if finding is None else (finding.offset or chain[0][1]) - 1
    verified = max(0, last_good - max(cursor.verified_to, chain[0][1] - 1))
    cursor.verified_to = max(cursor.verified_to, last_good)
    if finding is not None:  # start again at the next checkpoint after the bad record
        cursor.anchor = cursor.anchor_at = None
        cursor.search_from = (finding.offset if finding.offset is not None else last_good) + 1
        return TailResult(finding=finding, verified=verified)
    _move_anchor(cursor, chain)
    return TailResult(verified=verified)


def _decode(value: bytes) -> AuditEntry | None:
    try:
        return AuditEntry.from_bytes(value)
    except EntryError:
        return None


def _find_anchor(cursor: TailCursor, records: Sequence[Record], begin: int) -> bool:
    """The first checkpoint entry in ``records``, or seq 0 at the start of the partition."""
    for offset, value in records:
        entry = _decode(value)
        if entry is None:
            continue
        if entry.kind == "checkpoint":
            cursor.anchor, cursor.anchor_at = offset, entry.at_datetime
            return True
        if entry.seq == 0 and offset == begin:
            cursor.anchor, cursor.anchor_at = offset, None
            return True
    return False


def _move_anchor(cursor: TailCursor, chain: Sequence[tuple[int, int, bytes]]) -> None:
    """Anchor the next run at the last checkpoint entry just verified."""
    for _, offset, value in reversed(chain):
        if offset <= cursor.anchor:
            return
        entry = _decode(value)
        if entry is not None and entry.kind == "checkpoint":
            cursor.anchor, cursor.anchor_at = offset, entry.at_datetime
            return


@dataclass
class TailState:
    """The cursors of every partition a worker has verified."""

    cursors: dict[int, TailCursor] = field(default_factory=dict)

    def cursor(self, partition: int) -> TailCursor:
        return self.cursors.setdefault(partition, TailCursor())
