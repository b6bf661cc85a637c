"""The audit tail verifier's child process: read a range of ``R.audit[p]`` and check it.

Kept apart from pipeline/auditwatch.py so the spawned process imports only aiokafka and the audit
library (not Faust): reading ten thousand records and checking their hashes and signatures happens
here, never on the worker's event loop, whose ingress-to-cleared latency it used to spike.
"""

from __future__ import annotations

import asyncio
import functools
import os

from aiokafka import AIOKafkaConsumer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline import heap
from pipeline.audit import load_public_keys
from pipeline.audittail import Record, TailCursor, TailResult, check_tail


async def read_range(consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, stop: int) -> list[Record]:
    """The records of ``tp`` with offsets in ``[start, stop)``, in offset order."""
    consumer.seek(tp, start)
    records: list[Record] = []
    while await consumer.position(tp) < stop:
        for msg in (await consumer.getmany(tp, timeout_ms=1000, max_records=5000)).get(tp, []):
            if msg.offset < stop:
                records.append((msg.offset, msg.value))
    return records


async def _read(bootstrap: str, topic: str, partition: int, start: int, stop: int) -> list[Record]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed", request_timeout_ms=10_000)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        return await read_range(consumer, tp, start, stop)
    finally:
        await consumer.stop()


CHILD_NICENESS = 19


def lower_priority() -> None:
    """The child's initializer: verification is background work that must not take CPU from the
    data path. Its bursts (up to ``audit_verify_max_records`` per partition every
    ``audit_verify_interval_s``) took a core from the broker and the worker on a 2-core box:
    ingress-to-cleared p99 in ``residency bench`` at 500 events/s was 0.9-1.2 s with the verifier at
    the worker's priority every 30 s, 0.5-0.56 s at niceness 19, 0.21-0.27 s at niceness 19 every
    5 s, and 0.29 s with it off (docs/benchmarks.md, session 4)."""
    try:
        os.nice(CHILD_NICENESS)
    except OSError:  # not permitted here: run at the same priority
        pass


@functools.lru_cache(maxsize=4)
def _keys(pems: tuple[str, ...]) -> dict[str, Ed25519PublicKey]:
    return load_public_keys(list(pems))


def read_and_check(bootstrap: str, topic: str, partition: int, start: int, stop: int, cursor: TailCursor,
                   begin: int, pems: tuple[str, ...]) -> tuple[TailResult, TailCursor]:
    """Read ``[start, stop)`` of the partition and :func:`check_tail` it; the moved cursor goes back."""
    records = asyncio.run(_read(bootstrap, topic, partition, start, stop))
    result = check_tail(cursor, partition, records, begin=begin, keys=_keys(pems), topic=topic)
    del records
    heap.trim()  # the records read (up to audit_verify_max_records) are not kept resident until the next run
    return result, cursor
