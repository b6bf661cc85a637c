"""record: folds provenance fragments into the provenance table and chains them onto ``R.audit``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import orjson

from pipeline import faustfix
from pipeline.context import FleetContext, retrying
from pipeline.provenance import fold, fragments_of
from pipeline.tables import read_store, write_changelog, write_store

log = logging.getLogger(__name__)


def fold_batch(table: Any, events: list[Any]) -> tuple[list[tuple[int, dict]], list[tuple[int, bytes, bytes]]]:
    """Fold every fragment of ``events`` into the table's RocksDB store, one write batch per partition.

    Returns ``(partition, fragment)`` for the audit chain and ``(partition, key, value)`` for the
    table's changelog, which the caller sends and awaits before the batch is acknowledged (one send
    per folded key instead of Faust's per-write changelog path).
    """
    chained: list[tuple[int, dict]] = []
    changelog: dict[tuple[int, bytes], bytes] = {}  # also what this batch wrote, for later fragments of a key
    for event in events:
        msg = event.message
        try:
            fragments = fragments_of(msg.value)
        except (orjson.JSONDecodeError, ValueError):
            log.warning("not a provenance record", extra={"partition": msg.partition, "offset": msg.offset})
            continue
        partition = msg.partition
        for fragment in fragments:
            key = fragment["event_id"].encode()
            existing = changelog.get((partition, key)) or read_store(table, partition, key)
            folded = fold(existing, fragment)
            # A fragment folded before is written again all the same: after a kill -9 the local
            # RocksDB can hold a value whose changelog record never reached the broker, and only a
            # write puts it back in the changelog (the table's only copy once the local store is lost).
            changelog[(partition, key)] = folded if folded is not None else existing
            chained.append((partition, fragment))
    records = [(p, k, v) for (p, k), v in changelog.items()]
    write_store(table, records)
    return chained, records


async def record_batch(ctx: FleetContext, events: list[Any]) -> None:
    """Fold a batch into the table, then send its changelog records and audit entries and await the
    broker's acks. Safe to run again: a fragment folded before is written and chained again."""
    chained, changelog = fold_batch(ctx.provenance, events)
    # both are acknowledged before the batch is, and neither needs the other: their round trips
    # overlap (a crash before both are acknowledged replays the batch)
    await asyncio.gather(write_changelog(ctx, ctx.provenance, changelog), ctx.audit.append(chained))


def register_record(app: faust.App, ctx: FleetContext) -> None:
    topic = app.topic(ctx.topics.provenance, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", partitions=ctx.policy.topology.audit_partitions)

    async def record_provenance(stream: faust.StreamT) -> None:
        async with ctx.crash_on_error("record"):
            # a record holds a screen batch's fragments for one partition: bound the fragments per
            # batch, or one batch folds tens of thousands and blocks the event loop (latency, RSS)
            async for events in stream.take_events(ctx.settings.record_batch_messages,
                                                   within=ctx.settings.batch_within_s):
                await ctx.gate()
                await retrying("record", lambda events=events: record_batch(ctx, events),
                               lambda events=events: faustfix.current(app, events))

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
