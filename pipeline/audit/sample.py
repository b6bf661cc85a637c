"""A small, valid audit trail built in memory: for the demo and the tests, never for production."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pipeline.audit.chain import ChainWriter
from pipeline.audit.entry import AuditEntry
from pipeline.audit.external import Record
from pipeline.audit.signing import Signer

SAMPLE_TOPIC = "eu.audit"
SAMPLE_START = datetime(2024, 1, 1, tzinfo=UTC)
STAGES = ("screen", "hold", "approval", "release")


@dataclass
class SampleTrail:
    """What a record agent would have produced: ``R.audit`` and ``R.audit.checkpoints`` records."""

    records: list[Record] = field(default_factory=list)
    checkpoints: list[Record] = field(default_factory=list)


def sample_trail(
    signer: Signer,
    *,
    topic: str = SAMPLE_TOPIC,
    partitions: int = 1,
    fragments: int = 12,
    checkpoint_every: int = 4,
    start: datetime = SAMPLE_START,
    step: timedelta = timedelta(seconds=1),
) -> SampleTrail:
    """Fragments chained per partition, a checkpoint every ``checkpoint_every`` and one at the end."""
    trail = SampleTrail()
    for partition in range(partitions):
        writer = ChainWriter(topic, partition, None)
        clock = start
        for index in range(fragments):
            clock += step
            writer.append(sample_fragment(partition, index, clock), clock)
            _record(trail, writer)
            if (index + 1) % checkpoint_every == 0 or index + 1 == fragments:
                clock += step
                publish_checkpoint(trail, writer, signer, clock)
    return trail


def sample_fragment(partition: int, index: int, at: datetime) -> dict:
    """A provenance fragment with coordinates and decisions only, as the stages emit them."""
    return {
        "event_id": f"evt-{partition}-{index // 2}",  # two stages per event
        "stage": STAGES[index % len(STAGES)],
        "at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "policy_hash": "0" * 64,
        "decision": "cleared",
    }


def publish_checkpoint(trail: SampleTrail, writer: ChainWriter, signer: Signer, at: datetime) -> None:
    """Append a checkpoint to the chain and publish the same bytes to the checkpoints stream."""
    value = writer.checkpoint(signer, at)
    _record(trail, writer)
    trail.checkpoints.append((0, len(trail.checkpoints), value))


def _record(trail: SampleTrail, writer: ChainWriter) -> None:
    offset = sum(1 for partition, _, _ in trail.records if partition == writer.partition)
    trail.records.append((writer.partition, offset, writer.head.to_bytes()))


def rewrite_entry(value: bytes, **changes: object) -> bytes:
    """What an attacker without the signing key can do: edit an entry and recompute its hash.

    Used by the tamper demo and the tests to show such edits are still detected.
    """
    fields = AuditEntry.from_bytes(value).model_dump(exclude={"hash", "v"})
    fields.update(changes)
    return AuditEntry.build(**fields).to_bytes()
