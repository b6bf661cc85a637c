"""The fleet's RocksDB-backed tables."""

from __future__ import annotations

import weakref
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import TP
from rocksdict import WriteBatch

from pipeline.outputs import Output
from pipeline.sender import send_all

PROVENANCE = "provenance"
# RocksDB memory per table partition. Faust's defaults are sized for a dedicated machine: 64 MB
# memtables (up to 3 of them) and a 2 GB block cache *per partition's database*, so a worker's RSS
# grew with every entry written until a memtable filled (~90 MB more after 50,000 events in
# residency bench) and could reach gigabytes. Here a partition holds at most 2 x 4 MB of memtables
# and a 16 MB block cache: reads are of recent keys (folding a fragment into its event's record),
# which the memtables and the block cache serve. 4 MB rather than 8 since session 10: the worker's
# peak RSS with its helper fell from 385-386 to 364-370 MB in residency bench, events/s unchanged
# within the noise (docs/benchmarks.md).
# Bloom filters of 10 bits per key (Faust's default is 3): almost every read is of a key not yet in
# the table (a new event's first fragment), and with 3 bits about a quarter of such reads still loaded a data
# block from each table file, which filled the block cache with blocks no one reads again (34 MB of
# the provenance table's 48 after 200,000 events against 5 MB with 10 bits; docs/benchmarks.md,
# session 19).
ROCKSDB_OPTIONS = {
    "write_buffer_size": 4 * 2**20,
    "max_write_buffer_number": 2,
    "block_cache_size": 16 * 2**20,
    "bloom_filter_size": 10,
}


def bytes_table(app: faust.App, name: str, partitions: int, help: str) -> faust.Table:  # noqa: A002 - Faust's name
    """A RocksDB-backed table whose keys and values are bytes we encode ourselves, with the
    fleet's RocksDB memory bounds (``ROCKSDB_OPTIONS``)."""
    table = app.Table(name, partitions=partitions, key_type=bytes, value_type=bytes, help=help,
                      options=dict(ROCKSDB_OPTIONS))
    # Faust derives serializers from the types and defaults to "json"; it has no constructor
    # argument for them, and the store and changelog topic read these attributes when they start.
    table.key_serializer = "raw"
    table.value_serializer = "raw"
    return table


def provenance_table(app: faust.App, partitions: int) -> faust.Table:
    """Folded provenance per event id, partitioned like ``R.provenance`` (keyed by event id; the
    value is orjson of the record)."""
    return bytes_table(app, PROVENANCE, partitions, "Provenance of every event, keyed by event id.")


def make_current(event: Any) -> None:
    """Make ``event`` the one a table store writes for (it picks the partition from it), in this
    task only. Faust's ``Stream._set_current_event`` would also replace the stream's
    ``current_event``, which ``take_events`` reads in another task to fill the next batch: it then
    took our event, or none ("Take buffer found current_event is None" crashed the stream)."""
    _current_event.set(None if event is None else weakref.ref(event))


def read_store(table: Any, partition: int, key: bytes) -> bytes | None:
    """``key``'s value in the RocksDB database of ``table``'s ``partition``, or ``None``."""
    return table.data._db_for_partition(partition).get(key)  # noqa: SLF001 - Faust's rocksdb store


def write_store(table: Any, records: list[tuple[int, bytes, bytes]]) -> None:
    """Write ``(partition, key, value)`` to ``table``'s per-partition RocksDB databases, one write
    batch per partition. Faust's ``store[key] = value`` costs a Python mapping layer, an LRU update
    and a RocksDB write per key (~4.5% of the worker's main thread as the record agent used it);
    its key index is only a cache of where a key lives, which lookups without it rebuild."""
    batches: dict[int, WriteBatch] = {}
    for partition, key, value in records:
        batch = batches.get(partition)
        if batch is None:
            batch = batches[partition] = WriteBatch(raw_mode=True)
        batch.put(key, value)
    for partition, batch in batches.items():
        table.data._db_for_partition(partition).write(batch)  # noqa: SLF001


async def write_changelog(ctx: Any, table: Any, records: list[tuple[int, bytes, bytes]]) -> None:
    """Send ``(partition, key, value)`` written straight to ``table``'s store to its changelog (one
    send per batch instead of Faust's per-write path); once acknowledged, note the offsets in the
    store as Faust's own changelog callback does (recovery starts after them)."""
    if not records:
        return
    topic = table.changelog_topic.get_topic_name()
    metas = await send_all(ctx.producer, [Output(topic, k, v, []) for _, k, v in records], [p for p, _, _ in records])
    last: dict[int, int] = {}
    for meta in metas:
        last[meta.partition] = max(last.get(meta.partition, -1), meta.offset)
    for partition, offset in last.items():
        table.data.set_persisted_offset(TP(topic, partition), offset)
