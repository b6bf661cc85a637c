"""record: folds provenance fragments into the provenance table and chains them onto ``R.audit``."""

from __future__ import annotations

import logging
from typing import Any

import faust
import orjson

from pipeline.context import FleetContext
from pipeline.provenance import fold

log = logging.getLogger(__name__)


def fold_batch(stream: Any, table: Any, events: list[Any]) -> list[tuple[int, dict]]:
    """Fold each fragment into the table; return ``(partition, fragment)`` for the audit chain."""
    chained = []
    for event in events:
        # Faust picks the table partition (changelog and RocksDB) from the current event; in a
        # batch that must be this event, or a key would be written under another partition.
        stream._set_current_event(event)  # noqa: SLF001 - Faust has no public setter
        msg = event.message
        try:
            fragment = orjson.loads(msg.value)
        except orjson.JSONDecodeError:
            log.warning("not a provenance fragment", extra={"partition": msg.partition, "offset": msg.offset})
            continue
        existing = table.get(msg.key)
        folded = fold(existing, fragment)
        # A fragment folded before is written again all the same: after a kill -9 the local RocksDB
        # can hold a value whose changelog record never reached the broker, and only a write
        # puts it back in the changelog (the table's only copy once the local store is lost).
        table[msg.key] = folded if folded is not None else existing
        chained.append((msg.partition, fragment))
    stream._set_current_event(None)  # noqa: SLF001
    return chained


def register_record(app: faust.App, ctx: FleetContext) -> None:
    topic = app.topic(ctx.topics.provenance, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", partitions=ctx.policy.topology.audit_partitions)

    async def record_provenance(stream: faust.StreamT) -> None:
        async with ctx.crash_on_error("record"):
            async for events in stream.take_events(ctx.settings.batch_size, within=ctx.settings.batch_within_s):
                await ctx.gate()
                await ctx.audit.append(fold_batch(stream, ctx.provenance, events))

    app.agent(topic, name="record")(record_provenance)

    @app.timer(interval=ctx.settings.audit_checkpoint_seconds)
    async def checkpoint_idle_chains() -> None:
        await ctx.audit.checkpoint_idle()

    @app.on_before_shutdown.connect
    async def sign_chain_heads(app: faust.App, **kwargs: Any) -> None:  # noqa: ARG001
        try:
            await ctx.audit.checkpoint_all()
        except Exception as exc:  # noqa: BLE001 - shutting down; the next owner signs the head
            log.warning("final audit checkpoint failed (%s); the next owner signs the head", type(exc).__name__)

    @app.on_partitions_revoked.connect
    async def forget_chain_heads(app: faust.App, revoked: Any, **kwargs: Any) -> None:  # noqa: ARG001
        await ctx.audit.forget()
