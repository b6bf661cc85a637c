"""Choose the records that prove a time window: from the last checkpoint at or before ``since``
through the first checkpoint after ``until``, so both ends of the window are vouched for by a
signature. Records that do not decode are kept as they are: they are evidence.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pipeline.audit.entry import AuditEntry, EntryError
from pipeline.audit.external import Record

_Item = tuple[Record, AuditEntry | None]


def select_window(
    records: Iterable[Record],
    checkpoints: Iterable[Record],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[Record], list[Record]]:
    """The audit records and external checkpoint records needed to verify ``[since, until]``."""
    by_partition: dict[int, list[_Item]] = {}
    for record in records:
        by_partition.setdefault(record[0], []).append((record, _decode(record[2])))
    selected: list[Record] = []
    first_seq: dict[int, int] = {}
    for partition in sorted(by_partition):
        items = by_partition[partition]
        start = _anchor_index(items, since)
        end = _tail_index(items, start, until)
        chosen = items[start:end + 1]
        selected.extend(record for record, _ in chosen)
        seqs = [entry.seq for _, entry in chosen if entry is not None]
        first_seq[partition] = seqs[0] if seqs else 0
    return selected, _select_checkpoints(checkpoints, first_seq, until)


def _decode(value: bytes) -> AuditEntry | None:
    try:
        return AuditEntry.from_bytes(value)
    except EntryError:
        return None


def _is_checkpoint(entry: AuditEntry | None) -> bool:
    return entry is not None and entry.kind == "checkpoint"


def _anchor_index(items: list[_Item], since: datetime | None) -> int:
    if since is None:
        return 0
    anchors = [index for index, (_, entry) in enumerate(items)
               if _is_checkpoint(entry) and entry.at_datetime <= since]
    return anchors[-1] if anchors else 0


def _tail_index(items: list[_Item], start: int, until: datetime | None) -> int:
    if until is not None:
        for index in range(start, len(items)):
            entry = items[index][1]
            if _is_checkpoint(entry) and entry.at_datetime > until:
                return index
    return len(items) - 1


def _select_checkpoints(
    checkpoints: Iterable[Record], first_seq: dict[int, int], until: datetime | None
) -> list[Record]:
    decoded = [(record, _decode(record[2])) for record in checkpoints]
    first_after: dict[int, int] = {}  # per partition, the first checkpoint made after until
    for _, entry in decoded:
        if entry is not None and until is not None and entry.at_datetime > until:
            first_after[entry.partition] = min(entry.seq, first_after.get(entry.partition, entry.seq))
    return [record for record, entry in decoded if _keep(entry, first_seq, first_after, until)]


def _keep(
    entry: AuditEntry | None, first_seq: dict[int, int], first_after: dict[int, int],
    until: datetime | None,
) -> bool:
    if entry is None:
        return True  # undecodable: evidence, the verifier will name it
    if entry.seq < first_seq.get(entry.partition, 0):
        return False
    return until is None or entry.at_datetime <= until or entry.seq == first_after[entry.partition]
