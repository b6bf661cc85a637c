"""``residency trace``: the provenance of one event, read from the provenance stream."""

from __future__ import annotations

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.provenance import fold, fragments_of
from pipeline.topics import RegionTopics, key_partition
from schemas.policy import Policy


async def read_provenance(bootstrap: str, policy: Policy, event_id: str) -> dict | None:
    """Fold every fragment of ``event_id`` from its partition of ``R.provenance``."""
    topic = RegionTopics(policy.region).provenance
    tp = TopicPartition(topic, key_partition(event_id.encode(), policy.topology.audit_partitions))
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        record: bytes | None = None
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            for msg in batch.get(tp, []):
                try:
                    fragments = fragments_of(msg.value)
                except ValueError:  # orjson.JSONDecodeError is one too
                    continue
                for fragment in fragments:
                    if fragment["event_id"] == event_id:
                        record = fold(record, fragment) or record
    finally:
        await consumer.stop()
    return orjson.loads(record) if record else None


async def print_trace(bootstrap: str, policy: Policy, event_id: str) -> int:
    record = await read_provenance(bootstrap, policy, event_id)
    if record is None:
        print(f"no provenance for event {event_id}")
        return 1
    print(orjson.dumps(record, option=orjson.OPT_INDENT_2).decode())
    return 0


def trace_from_worker(url: str, event_id: str) -> int:
    """Print the provenance record a worker serves from its table (any worker routes to the owner)."""
    from urllib.error import HTTPError, URLError
    from urllib.parse import quote
    from urllib.request import urlopen

    try:
        with urlopen(f"{url.rstrip('/')}/provenance/{quote(event_id, safe='')}/", timeout=15) as response:  # noqa: S310
            record = orjson.loads(response.read())
    except HTTPError as exc:
        print(f"no provenance for event {event_id}" if exc.code == 404 else f"worker answered HTTP {exc.code}")
        return 1
    except URLError as exc:
        print(f"cannot reach the worker at {url}: {exc.reason}")
        return 1
    print(orjson.dumps(record, option=orjson.OPT_INDENT_2).decode())
    return 0
