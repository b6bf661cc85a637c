"""AuditAppender against a real broker: a batch spanning partitions goes out in one send, and a
failure part-way leaves no writer ahead of its topic (the chains still verify end to end)."""

from __future__ import annotations

import asyncio
import secrets

import faust
import pytest

from pipeline.audit import generate_signing_key, load_signing_key, verify
from pipeline.auditlog import AuditAppender
from pipeline.harness import read_topic
from tests.kafka_topics import create_topics

PARTITIONS = 3


def fragment(event_id: str) -> dict:
    return {"event_id": event_id, "stage": "screen", "at": "2026-11-30T12:00:00Z",
            "policy_hash": "a" * 64, "decision": "cleared"}


async def _append_with_a_failed_resume(bootstrap: str, audit: str, checkpoints: str, signer) -> list[int]:
    app = faust.App(f"appender-{secrets.token_hex(3)}", broker=f"kafka://{bootstrap}", producer_acks=-1)
    producer = app.producer
    await producer.start()
    try:
        appender = AuditAppender(bootstrap=bootstrap, audit_topic=audit, checkpoints_topic=checkpoints,
                                 signer=signer, producer=lambda: producer, every_entries=7)
        n = 0

        def batch(size: int) -> list[tuple[int, dict]]:
            nonlocal n
            out = [(i % PARTITIONS, fragment(f"e{n + i}")) for i in range(size)]
            n += size
            return out

        await appender.append(batch(30))  # every partition, and checkpoints (every 7 entries)
        real = appender._writer  # noqa: SLF001

        async def partition_2_unreadable(partition: int):  # noqa: ANN202
            if partition == 2:
                raise ConnectionError("the broker went away while the chain head was read")
            return await real(partition)

        appender._writer = partition_2_unreadable  # noqa: SLF001
        with pytest.raises(ConnectionError):
            await appender.append(batch(9))  # partitions 0 and 1 chain in memory, then 2 fails
        left = sorted(appender._writers)  # noqa: SLF001
        appender._writer = real  # noqa: SLF001
        await appender.append(batch(12))  # resumes 0 and 1 from their topic
        await appender.checkpoint_all()
        return left
    finally:
        await producer.stop()


def test_when_a_batch_spans_partitions_and_one_fails_then_every_chain_still_verifies(kafka_bootstrap: str) -> None:
    audit, checkpoints = f"appender.{secrets.token_hex(4)}.audit", f"appender.{secrets.token_hex(4)}.checkpoints"
    asyncio.run(create_topics(kafka_bootstrap, [audit, checkpoints], PARTITIONS))
    signer = load_signing_key(generate_signing_key())

    left = asyncio.run(_append_with_a_failed_resume(kafka_bootstrap, audit, checkpoints, signer))

    assert left == [2], "a writer that chained entries never sent was kept (or an untouched one dropped)"
    records = [(m.partition, m.offset, m.value) for m in asyncio.run(read_topic(kafka_bootstrap, audit))]
    copies = [(m.partition, m.offset, m.value) for m in asyncio.run(read_topic(kafka_bootstrap, checkpoints))]
    report = verify(records, copies, {signer.key_id: signer.public_key}, topic=audit)
    assert report.ok, report.summary()
    assert report.counts.fragments == 42  # 30 + 12: the failed batch sent nothing
    assert {p for p, _, _ in copies} == set(range(PARTITIONS))
