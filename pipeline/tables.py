"""The fleet's RocksDB-backed tables."""

from __future__ import annotations

import faust

PROVENANCE = "provenance"


def provenance_table(app: faust.App, partitions: int) -> faust.Table:
    """Folded provenance per event id, partitioned like ``R.provenance`` (keyed by event id)."""
    return app.Table(
        PROVENANCE,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        help="Provenance of every event, keyed by event id.",
    )
