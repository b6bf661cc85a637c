"""EffectLog against a real broker: watermarks of partitions it never sent to, and a recovery read."""

from __future__ import annotations

import asyncio

import orjson
from aiokafka import AIOKafkaProducer

from pipeline.effects import SOURCE_HEADER, EffectLog, Emitted, intent_key
from tests.kafka_topics import create_topics

REGION = "effectlog"
INTENTS = f"{REGION}.screen.intents"
DESTINATIONS = [f"{REGION}.cleared.a", f"{REGION}.cleared.b", f"{REGION}.held", f"{REGION}.rejected.a"]
SOURCES = [(f"{REGION}.raw.a", 0), (f"{REGION}.raw.a", 1)]


async def _scenario(bootstrap: str) -> None:
    await create_topics(bootstrap, [INTENTS], 1)
    await create_topics(bootstrap, DESTINATIONS, 2)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        # what an earlier owner emitted: per source partition, an intent and then its outputs
        sent: dict[tuple[str, int], dict[tuple[str, str], Emitted]] = {source: {} for source in SOURCES}
        for n, source in enumerate(SOURCES):
            await producer.send_and_wait(INTENTS, key=intent_key(*source), value=orjson.dumps({
                "source": list(source), "first_offset": 10,
                "destinations": [[topic, p, 0] for topic in DESTINATIONS for p in (0, 1)]}))
            for i in range(30):
                topic, partition = DESTINATIONS[(i + n) % len(DESTINATIONS)], i % 2
                event_id = f"e{n}-{i}"
                origin = f"{source[0]}:{source[1]}:{10 + i}".encode()
                meta = await producer.send_and_wait(topic, b"{}", partition=partition,
                                                    headers=[(SOURCE_HEADER, origin), ("event-id", event_id.encode())])
                sent[source][(event_id, topic)] = Emitted(topic, partition, meta.offset)
        extra = await producer.send_and_wait(DESTINATIONS[2], b"{}", partition=1)  # no source: not an output
    finally:
        await producer.stop()

    effects = EffectLog(bootstrap, INTENTS)
    try:
        for source in SOURCES:  # each source's recovery reads the destinations its intent names
            recovered = await asyncio.wait_for(effects.recovered(source), 30)
            assert recovered.first_offset == 10
            assert recovered.emitted == sent[source]
            assert recovered.lookup(10, f"e{SOURCES.index(source)}-0", DESTINATIONS[SOURCES.index(source)]) is not None
            assert recovered.lookup(9, f"e{SOURCES.index(source)}-0", DESTINATIONS[SOURCES.index(source)]) is None
        # watermarks of partitions of four topics this worker never sent to: the broker's end offsets,
        # asked after the recovery reads (on a client of their own)
        tps = [(topic, p) for topic in DESTINATIONS for p in (0, 1)]
        marks = await asyncio.wait_for(effects.highwaters(tps), 30)
        ends: dict[tuple[str, int], int] = {tp: 0 for tp in tps}
        for emitted in sent.values():
            for e in emitted.values():
                ends[(e.topic, e.partition)] = max(ends[(e.topic, e.partition)], e.offset + 1)
        ends[(DESTINATIONS[2], 1)] = extra.offset + 1
        assert marks == ends
        effects.acked([extra])  # a partition sent to since: its watermark comes from the ack
        assert (await effects.highwaters([(DESTINATIONS[2], 1)])) == {(DESTINATIONS[2], 1): extra.offset + 1}
    finally:
        await effects.stop()


def test_watermarks_of_unknown_topics_and_a_recovery_read_on_a_real_broker(kafka_bootstrap: str) -> None:
    asyncio.run(_scenario(kafka_bootstrap))
