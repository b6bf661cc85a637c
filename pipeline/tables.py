"""The fleet's RocksDB-backed tables."""

from __future__ import annotations

import faust

PROVENANCE = "provenance"


def provenance_table(app: faust.App, partitions: int) -> faust.Table:
    """Folded provenance per event id, partitioned like ``R.provenance`` (keyed by event id).

    Keys and values are bytes we encode ourselves (event id; orjson of the record).
    """
    table = app.Table(PROVENANCE, partitions=partitions, key_type=bytes, value_type=bytes,
                      help="Provenance of every event, keyed by event id.")
    # Faust derives serializers from the types and defaults to "json"; it has no constructor
    # argument for them, and the store and changelog topic read these attributes when they start.
    table.key_serializer = "raw"
    table.value_serializer = "raw"
    return table
