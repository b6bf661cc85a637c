"""record: folds provenance fragments into the provenance table, keyed by event id."""

from __future__ import annotations

from typing import Any

import faust
import orjson

from pipeline.context import FleetContext
from pipeline.provenance import fold


def record_batch(stream: Any, table: Any, events: list[Any]) -> None:
    for event in events:
        # Faust picks the table partition (changelog and RocksDB) from the current event; in a
        # batch that must be this event, or a key would be written under another partition.
        stream._set_current_event(event)  # noqa: SLF001 - Faust has no public setter
        key = event.message.key
        try:
            fragment = orjson.loads(event.message.value)
        except orjson.JSONDecodeError:
            continue  # not ours to fold; the audit verifier reports foreign records on the topic
        folded = fold(table.get(key), fragment)
        if folded is not None:
            table[key] = folded
    stream._set_current_event(None)  # noqa: SLF001


def register_record(app: faust.App, ctx: FleetContext) -> None:
    topic = app.topic(ctx.topics.provenance, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", partitions=ctx.policy.topology.audit_partitions)

    async def record_provenance(stream: faust.StreamT) -> None:
        async for events in stream.take_events(ctx.settings.batch_size, within=ctx.settings.batch_within_s):
            record_batch(stream, ctx.provenance, events)

    app.agent(topic, name="record")(record_provenance)
