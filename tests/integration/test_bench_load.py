"""The latency run's load generator against a real broker: every event arrives once, at the partition
Kafka's default partitioner picks for its key, with its headers and the timestamp it was stamped with,
at about the rate asked for."""

from __future__ import annotations

import asyncio
import secrets

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.benchmark.events import bench_events
from pipeline.benchmark.run import _produce_at
from pipeline.topics import RegionTopics, key_partition
from tests.kafka_topics import create_topics

PARTITIONS = 3
RATE = 400.0


async def _load(bootstrap: str) -> None:
    names = RegionTopics(f"load{secrets.token_hex(3)}")
    events = list(bench_events(600, seed=11))
    for e in events:
        e.headers = [("event-id", e.event_id.encode())]
    topics = sorted({names.raw(e.dataset) for e in events})
    await create_topics(bootstrap, topics, PARTITIONS)

    loop = asyncio.get_running_loop()
    began = loop.time()
    sent = await _produce_at(bootstrap, names, events, RATE)
    took = loop.time() - began
    assert set(sent) == {e.event_id for e in events}
    # 600 events at 400/s: 1.5 s of sending, and never all at once
    assert took >= 1.4, took
    stamps = sorted(sent.values())
    assert stamps[-1] - stamps[0] >= 1300

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        assert sum(ends.values()) == len(events)  # each event once
        found = {}
        async with asyncio.timeout(60):
            while len(found) < len(events):
                for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                    for r in records:
                        found[dict(r.headers)["event-id"].decode()] = (tp, r)
    finally:
        await consumer.stop()
    for e in events:
        tp, r = found[e.event_id]
        assert tp.topic == names.raw(e.dataset)
        assert (r.key, r.value, list(r.headers)) == (e.key, e.value, e.headers)
        assert r.timestamp == sent[e.event_id]
        if e.key is not None:  # where aiokafka's and Java's default partitioner put it
            assert tp.partition == key_partition(e.key, PARTITIONS)


def test_load_generator_sends_every_event_once_where_kafka_would(kafka_bootstrap: str) -> None:
    asyncio.run(_load(kafka_bootstrap))


async def _drop(bootstrap: str) -> None:
    from pipeline.benchmark.run import drop_region_topics

    region, other = f"bench{secrets.token_hex(3)}", f"bench{secrets.token_hex(3)}"
    ours = [f"{region}.raw.payments", f"{region}.residency-provenance-changelog", f"{region}-r2.audit",
            f"{region}-cmp.cleared.tickets"]
    theirs = [f"{other}.raw.payments", f"{region}x.raw.payments", f"{other}-r2.audit"]
    await create_topics(bootstrap, ours + theirs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        assert await drop_region_topics(bootstrap, region) == len(ours)
        async with asyncio.timeout(30):  # deletion is asynchronous on the broker
            while set(ours) & set(await admin.list_topics()):
                await asyncio.sleep(0.2)
        assert set(theirs) <= set(await admin.list_topics())
        assert await drop_region_topics(bootstrap, region) == 0  # nothing of the run left
    finally:
        await admin.delete_topics(theirs)
        await admin.close()


def test_a_run_deletes_its_own_topics_and_no_one_elses(kafka_bootstrap: str) -> None:
    asyncio.run(_drop(kafka_bootstrap))
