"""send_all against a real broker: every record lands where send_all says, in order, on both paths."""

from __future__ import annotations

import asyncio

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.outputs import Output
from pipeline.sender import send_all
from tests.kafka_topics import create_topics

TOPIC = "sender.test"


async def _round_trip(bootstrap: str) -> None:
    await create_topics(bootstrap, [TOPIC], 3)
    # 16 KB batches: ~1 KB records overflow a batch many times per partition
    app = faust.App("sender-test", broker=f"kafka://{bootstrap}", producer_max_batch_size=16 * 1024,
                    producer_acks=-1)
    producer = app.producer
    await producer.start()
    try:
        outputs = [Output(TOPIC, f"k{i}".encode(), bytes([i % 251]) * (700 + i % 600), [("n", str(i).encode())])
                   for i in range(400)]
        partitions = [(i * 7) % 3 for i in range(400)]
        batched = await send_all(producer, outputs, partitions)
        loose = await send_all(producer, outputs[:20])  # the default partitioner's path
    finally:
        await producer.stop()

    sent = [*zip(outputs, batched), *zip(outputs[:20], loose)]
    assert [m.partition for m in batched] == partitions
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(3)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        assert sum(ends.values()) == len(sent)
        found: dict[tuple[int, int], tuple[bytes, bytes, list]] = {}
        async with asyncio.timeout(60):
            while len(found) < len(sent):
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    for r in records:
                        found[(r.partition, r.offset)] = (r.key, r.value, list(r.headers))
    finally:
        await consumer.stop()
    for out, meta in sent:
        assert meta.topic == TOPIC
        assert found[(meta.partition, meta.offset)] == (out.key, out.value, [(n, v) for n, v in out.headers])
    # the offsets of one partition's records follow the order they were given in
    for p in range(3):
        offsets = [m.offset for m, q in zip(batched, partitions, strict=True) if q == p]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)


def test_every_record_is_where_send_all_says(kafka_bootstrap: str) -> None:
    asyncio.run(_round_trip(kafka_bootstrap))
