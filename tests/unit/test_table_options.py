"""The fleet's RocksDB options (pipeline.tables.ROCKSDB_OPTIONS) on a real RocksDB, as Faust opens it."""

from __future__ import annotations

import os
from pathlib import Path

from faust.stores.rocksdb import RocksDBOptions
from rocksdict import Rdict

from pipeline.tables import ROCKSDB_OPTIONS


def _block_cache_after_absent_reads(path: Path, options: dict) -> int:
    """Bytes in the block cache after 150,000 ~900-byte entries and 50,000 reads of absent keys."""
    db = Rdict(str(path), options=RocksDBOptions(**options).as_options())
    try:
        value = os.urandom(300) * 3
        for i in range(150_000):
            db[f"event-{i}".encode()] = value
        db.flush()
        for i in range(150_000, 200_000):  # a new event's first fragment: its key is not there yet
            assert db.get(f"event-{i}".encode()) is None
        return int(db.property_value("rocksdb.block-cache-usage"))
    finally:
        db.close()


def test_reads_of_absent_keys_leave_the_block_cache_to_what_is_read_again(tmp_path: Path) -> None:
    ours = _block_cache_after_absent_reads(tmp_path / "ours", ROCKSDB_OPTIONS)
    fausts = _block_cache_after_absent_reads(tmp_path / "faust", {**ROCKSDB_OPTIONS, "bloom_filter_size": 3})
    assert ours < fausts / 2, (ours, fausts)  # measured 1.7 MB against 5.1


def test_memory_per_table_partition_is_bounded() -> None:
    assert ROCKSDB_OPTIONS["write_buffer_size"] * ROCKSDB_OPTIONS["max_write_buffer_number"] <= 8 * 2**20
    assert ROCKSDB_OPTIONS["block_cache_size"] <= 16 * 2**20
