"""What a verification found: counts, and the first bad record with what is wrong with it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Literal

FindingKind = Literal[
    "modified",
    "missing",
    "reordered",
    "truncated",
    "bad_checkpoint_signature",
    "checkpoint_mismatch",
    "unparseable",
    "manifest_mismatch",
]
Source = Literal["audit", "checkpoints", "bundle"]

_SOURCE_RANK = {"audit": 0, "checkpoints": 1, "bundle": 2}


@dataclass(frozen=True)
class Finding:
    """One bad record. Coordinates and hashes only: never a payload value.

    ``partition`` is the audit partition of the chain concerned; ``offset`` is the record's offset in
    ``source`` (``R.audit``, or ``R.audit.checkpoints`` at ``source_partition``); ``line`` is its
    line in a bundle file; ``seq`` is its position in the chain, when known.
    """

    kind: FindingKind
    detail: str
    partition: int | None = None
    offset: int | None = None
    seq: int | None = None
    event_id: str | None = None
    source: Source = "audit"
    source_partition: int | None = None
    file: str | None = None
    line: int | None = None

    def sort_key(self) -> tuple:
        big = 1 << 62
        return (
            self.partition if self.partition is not None else big,
            _SOURCE_RANK[self.source],
            self.seq if self.seq is not None else big,
            self.offset if self.offset is not None else big,
        )

    def describe(self) -> str:
        """A one-line description naming where the bad record is."""
        pairs = [("file", self.file), ("line", self.line)]
        if self.source == "checkpoints":
            pairs += [("checkpoints partition", self.source_partition),
                      ("checkpoints offset", self.offset), ("audit partition", self.partition)]
        else:
            pairs += [("partition", self.partition), ("offset", self.offset)]
        pairs += [("seq", self.seq), ("event_id", self.event_id)]
        where = ", ".join(f"{name}={value}" for name, value in pairs if value is not None)
        origin = {"audit": "R.audit", "checkpoints": "R.audit.checkpoints"}.get(self.source, "bundle")
        return f"{self.kind} in {origin} ({where}): {self.detail}"

    def to_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass
class Counts:
    """Entries whose ``at`` falls in the window (all entries when there is no window)."""

    entries: int = 0
    fragments: int = 0
    checkpoints: int = 0
    partitions: int = 0
    event_ids: int = 0
    context_entries: int = 0  # verified to anchor the window, but outside it


@dataclass
class Report:
    """The outcome of :func:`pipeline.audit.verify.verify`."""

    counts: Counts
    errors: list[Finding] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None
    notes: list[str] = field(default_factory=list)
    topic: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def first_error(self) -> Finding | None:
        return self.errors[0] if self.errors else None

    def summary(self) -> str:
        """A short human-readable verdict."""
        c = self.counts
        window = ""
        if self.since or self.until:
            window = f" in window [{self.since or '-'}, {self.until or '-'}]"
        head = (
            f"{'OK' if self.ok else 'FAILED'}: {c.entries} entries ({c.fragments} fragments, "
            f"{c.checkpoints} checkpoints) for {c.event_ids} event ids in {c.partitions} partitions"
            f"{window}"
        )
        lines = [head]
        if self.first_error:
            lines.append(f"first bad record: {self.first_error.describe()}")
            if len(self.errors) > 1:
                lines.append(f"{len(self.errors) - 1} more finding(s)")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)
