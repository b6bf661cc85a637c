"""The three pass-through baselines, each run as its own process: ``python -m pipeline.benchmark.passthrough``.

Every one copies each source record (key, value) to a sink topic and keeps at-least-once: an offset
is committed only after the copies of the records before it are acknowledged (acks=all).

- ``raw``: aiokafka as a careful engineer writes it: ``getmany`` a few thousand records, send them
  all, await the acks together, then commit the offsets of that batch.
- ``faust``: the naive Faust agent (``async for v in stream: await sink.send(value=v)``), Faust's
  defaults except what running it needs (no topic declaration, no web server).
- ``faust-tuned``: the fastest Faust we found that still commits only acknowledged work: batches from
  ``stream.take_events``, one direct ``producer.send`` per record awaited per batch (Faust acks the
  batch's events, and so lets their offsets be committed, only after the loop body returns), bigger
  stream buffers and producer batches. See docs/benchmarks.md for what was tried.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

TUNED_BATCH = 2000


async def run_raw(bootstrap: str, group: str, sources: list[str], sink: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    consumer = AIOKafkaConsumer(*sources, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024,
                                fetch_max_bytes=64 * 1024 * 1024)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=512 * 1024)
    await consumer.start()
    await producer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=5000)
            if not batches:
                continue
            futures = [await producer.send(sink, msg.value, key=msg.key)
                       for records in batches.values() for msg in records]
            await asyncio.gather(*futures)
            await consumer.commit({TopicPartition(tp.topic, tp.partition): records[-1].offset + 1
                                   for tp, records in batches.items()})
    finally:
        await producer.stop()
        await consumer.stop()


def faust_app(mode: str, bootstrap: str, group: str, sources: list[str], sink: str, data_dir: Path):  # noqa: ANN201
    import faust

    common = dict(broker=[f"kafka://{s}" for s in bootstrap.split(",")], store="memory://", datadir=str(data_dir),
                  autodiscover=False, web_enabled=False, topic_allow_declare=False, topic_disable_leader=True,
                  logging_config=None)
    tuned = dict(stream_buffer_maxsize=32_768, broker_max_poll_records=5000, producer_linger=0.005,
                 producer_max_batch_size=512 * 1024, consumer_max_fetch_size=4 * 1024 * 1024,
                 broker_commit_every=10_000, broker_commit_interval=1.0)
    app = faust.App(group, **common, **(tuned if mode == "faust-tuned" else {}))
    source = app.topic(*sources, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    out = app.topic(sink, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    async def naive(stream: faust.StreamT) -> None:
        async for value in stream:
            await out.send(value=value)

    async def batched(stream: faust.StreamT) -> None:
        producer = app.producer
        async for events in stream.take_events(TUNED_BATCH, within=0.05):
            futures = [await producer.send(sink, e.message.key, e.message.value, None, None, None) for e in events]
            await asyncio.gather(*futures)

    app.agent(source, name="passthrough")(batched if mode == "faust-tuned" else naive)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["raw", "faust", "faust-tuned"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--source", required=True, help="comma-separated source topics")
    parser.add_argument("--sink", required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    sources = args.source.split(",")
    if args.mode == "raw":
        try:
            asyncio.run(run_raw(args.bootstrap, args.group, sources, args.sink))
        except KeyboardInterrupt:
            pass
        return 0
    import faust

    app = faust_app(args.mode, args.bootstrap, args.group, sources, args.sink, args.data_dir)
    sys.argv = sys.argv[:1]  # with our arguments left in argv, the Faust worker starts but never fetches
    worker = faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # else Faust sets the root logger to DEBUG (see pipeline/worker.py)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
