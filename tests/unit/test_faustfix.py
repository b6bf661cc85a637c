"""The offset bookkeeping fixes of pipeline.faustfix: holes, commit offsets, seek epochs."""

from __future__ import annotations

import faust.transport.consumer as faust_consumer
from intervaltree import IntervalTree

from pipeline import faustfix
from pipeline.faustfix import ReadOffsets, hole, new_offset


def test_a_hole_never_includes_the_message_that_revealed_it():
    assert hole(committed=10, previous=12, offset=15, after_seek=False) == (13, 15)


def test_consecutive_messages_leave_no_hole():
    assert hole(committed=10, previous=12, offset=13, after_seek=False) is None


def test_after_a_seek_the_hole_starts_at_the_offset_sought_to():
    # a seek to 10 means "next to read is 10": a first message at 12 leaves 10 and 11 empty
    assert hole(committed=10, previous=10, offset=12, after_seek=True) == (10, 12)
    assert hole(committed=10, previous=10, offset=10, after_seek=True) is None


def test_a_hole_never_reaches_below_the_committed_offset():
    assert hole(committed=20, previous=12, offset=25, after_seek=False) == (20, 25)
    assert hole(committed=30, previous=12, offset=25, after_seek=False) is None


def test_without_a_previous_message_there_is_no_hole():
    assert hole(committed=None, previous=None, offset=25, after_seek=True) is None


def test_a_commit_needs_the_run_to_start_at_the_committed_offset():
    # Faust allowed one offset of slack here (upstream #606): 2585 still in flight was skipped
    assert new_offset(2585, [2586, 2587, 2588, 2589]) == (None, 0)
    assert new_offset(2585, [2585, 2586, 2587]) == (2588, 3)


def test_a_commit_stops_at_the_first_missing_offset():
    assert new_offset(5, [5, 6, 7, 9, 10]) == (8, 3)


def test_without_a_committed_offset_the_first_run_counts():
    assert new_offset(None, [3, 4, 5]) == (6, 3)
    assert new_offset(None, []) == (None, 0)


def test_reading_an_unknown_partition_is_not_a_seek():
    offsets = ReadOffsets()
    assert offsets["tp"] is None
    assert offsets.epoch["tp"] == 0 and "tp" not in offsets


def test_every_write_from_outside_the_fetch_loop_is_a_seek():
    offsets = ReadOffsets({"tp": 4})
    offsets.advance("tp", 5)
    assert offsets.epoch["tp"] == 0
    offsets["tp"] = 2          # Consumer.seek
    offsets.update({"tp": 3})  # Consumer.perform_seek
    offsets.pop("tp", None)    # on_partitions_revoked
    offsets["tp"] = 1
    del offsets["tp"]          # _seek_wait to offset 0
    assert offsets.epoch["tp"] == 5


class _Bookkeeping:
    """The attributes of a Faust consumer that its offset bookkeeping reads and writes."""

    def __init__(self, committed: int | None) -> None:
        self._acked = {"tp": []}
        self._acked_index = {"tp": set()}
        self._gap = {"tp": IntervalTree()}
        self._committed_offset = {"tp": committed}


def test_holes_count_as_acknowledged_but_the_message_after_them_does_not():
    consumer = _Bookkeeping(committed=10)
    consumer._gap["tp"].addi(10, 12)  # 10 and 11 hold transaction markers; 12 is being processed
    consumer._acked["tp"] = [13]
    consumer._acked_index["tp"] = {13}
    assert faustfix._new_offset(consumer, "tp") == 12  # "next to read: 12", still in flight
    consumer._committed_offset["tp"] = 12
    assert faustfix._new_offset(consumer, "tp") is None
    consumer._acked["tp"].append(12)
    consumer._acked_index["tp"].add(12)
    assert faustfix._new_offset(consumer, "tp") == 14
    assert consumer._acked["tp"] == [] and not consumer._acked_index["tp"] & {12, 13}


def test_a_gap_left_below_the_committed_offset_does_not_stall_commits():
    consumer = _Bookkeeping(committed=20)
    consumer._gap["tp"].addi(3, 5)
    consumer._acked["tp"] = [20, 21]
    consumer._acked_index["tp"] = {20, 21}
    assert faustfix._new_offset(consumer, "tp") == 22


def test_install_patches_faust_once():
    faustfix.install()
    faustfix.install()
    cls = faust_consumer.Consumer
    assert cls._new_offset is faustfix._new_offset
    assert cls._add_gap is faustfix._add_gap
    assert cls._drain_messages is faustfix._drain_messages
