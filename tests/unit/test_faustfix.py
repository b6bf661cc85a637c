"""The offset bookkeeping fixes of pipeline.faustfix: commit offsets, seek epochs, refetches."""

from __future__ import annotations

import asyncio

import faust.transport.consumer as faust_consumer
from aiokafka import TopicPartition
from intervaltree import IntervalTree

from pipeline import faustfix, faustwatch
from pipeline.faustfix import ReadOffsets, new_offset


def test_a_commit_needs_the_run_to_start_at_the_committed_offset():
    # Faust allowed one offset of slack here (upstream #606): 2585 still in flight was skipped
    assert new_offset(2585, [2586, 2587, 2588, 2589]) == (None, 0)
    assert new_offset(2585, [2585, 2586, 2587]) == (2588, 3)


def test_a_commit_stops_at_the_first_missing_offset():
    assert new_offset(5, [5, 6, 7, 9, 10]) == (8, 3)


def test_without_a_committed_offset_nothing_is_committed():
    # between a revocation and the next seek Faust knows no committed offset; a message an agent
    # acknowledged then must not commit past the ones the rebalance took out of the queues
    assert new_offset(None, [13]) == (None, 0)
    assert new_offset(None, [3, 4, 5]) == (None, 0)
    assert new_offset(None, []) == (None, 0)
    assert new_offset(3, [3, 4, 5]) == (6, 3)


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
    assert cls.perform_seek is faustfix._perform_seek
    # the seek goes through the consumer thread, as Faust's own seeks do
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    assert callable(AIOKafkaConsumerThread.seek_to_beginning)


def test_every_producer_of_the_worker_is_idempotent():
    # a retried send after a lost acknowledgement must not append the batch twice
    from faust.transport.drivers import aiokafka as faust_aiokafka

    faustfix.install()
    extra = faust_aiokafka.Producer._settings_extra(object())
    assert extra == {"acks": "all", "enable_idempotence": True}


def test_perform_seek_positions_partitions_with_nothing_committed():
    # aiokafka's seek_to_committed leaves them where they are; the fetch loop then discards the
    # messages in hand as "fetched before the seek", and nothing would fetch them again
    fresh, zero, going = (TopicPartition("t", p) for p in range(3))

    class FakeConsumer:
        def __init__(self) -> None:
            self._read_offset = ReadOffsets()
            self._committed_offset: dict = {}
            self.to_beginning: list = []
            self._thread = self

        async def seek_to_committed(self) -> dict:
            return {fresh: None, zero: 0, going: 7}

        async def seek_to_beginning(self, *tps: TopicPartition) -> None:
            self.to_beginning.extend(tps)

        async def earliest_offsets(self, *tps: TopicPartition) -> dict:
            return {tp: 4 if tp.partition == 0 else 0 for tp in tps}  # partition 0's log starts at 4

        async def position(self, tp: TopicPartition) -> int:
            raise AssertionError("the position can be past a record fetched since the seek")

    consumer = FakeConsumer()
    asyncio.run(faustfix._perform_seek(consumer))
    assert consumer.to_beginning == [fresh, zero]
    assert dict(consumer._read_offset) == {fresh: 4, zero: 0, going: 7}
    # each partition has a committed offset to commit from: its first offset when nothing is committed
    assert consumer._committed_offset == {("t", 0): 4, ("t", 1): 0, ("t", 2): 7}
    assert all(consumer._read_offset.epoch[tp] == 1 for tp in (fresh, zero, going))  # each one a seek


def test_after_stop_commits_the_consumer_commits_nothing(monkeypatch):
    # a failed agent's messages are acknowledged by Faust on the way out; committing them would
    # skip them for good
    faustfix.install()
    monkeypatch.setattr(faustfix, "_watch_tails", lambda consumer: None)  # these fakes have no partitions
    calls = []

    class Stopped:
        _residency_commits_stopped = True

    async def original(self, *args, **kwargs):  # noqa: ANN001, ANN202
        calls.append(args)
        return True

    saved, faustfix._original_commit = faustfix._original_commit, original
    try:
        assert asyncio.run(faustfix._commit(Stopped())) is False
        consumer = type("Running", (), {})()
        assert asyncio.run(faustfix._commit(consumer)) is True
        faustfix.stop_commits(consumer)
        assert asyncio.run(faustfix._commit(consumer)) is False
        assert len(calls) == 1
    finally:
        faustfix._original_commit = saved
    assert faust_consumer.Consumer.commit is faustfix._commit


def test_an_offset_put_aside_must_come_back_before_anything_after_it():
    owed = faustfix.Owed()
    owed.put_aside("tp", 22)
    owed.put_aside("tp", 21)  # the lowest one counts
    assert owed.due("tp", 19, None, set()) is None  # a refetch from below: it will get there
    assert owed.due("tp", 23, None, set()) == 21  # went past it: seek back to 21
    assert owed.due("tp", 21, None, set()) is None  # delivered again
    assert "tp" not in owed
    assert owed.due("tp", 40, None, set()) is None


def test_an_offset_put_aside_is_not_owed_once_committed_or_acknowledged():
    owed = faustfix.Owed()
    owed.put_aside("tp", 5)
    assert owed.due("tp", 9, 7, set()) is None  # committed meanwhile (another owner did it)
    assert "tp" not in owed
    owed.put_aside("tp", 5)
    assert owed.due("tp", 6, None, {5}) is None  # processed and acknowledged meanwhile
    assert "tp" not in owed
    owed.put_aside("other", 3)
    assert owed.due("tp", 100, None, set()) is None  # per partition


def test_a_head_that_never_reached_an_agent_is_fetched_again():
    assert faustwatch.stuck_head(17, [18, 19])
    assert not faustwatch.stuck_head(17, [17, 18])  # committable
    assert not faustwatch.stuck_head(None, [3])  # nothing committed yet
    assert not faustwatch.stuck_head(17, [])


def test_the_watchdog_seeks_back_only_after_the_head_stayed_missing(monkeypatch):
    seeks = []

    class FakeConsumer:
        _read_offset = ReadOffsets()

        async def seek_wait(self, partitions):  # noqa: ANN001, ANN201
            seeks.extend(partitions.items())

    tp = TopicPartition("t", 0)
    clock = [100.0]
    monkeypatch.setattr(faustwatch, "clock", lambda: clock[0])

    async def run() -> None:
        consumer = FakeConsumer()
        faustwatch._watch_head(consumer, tp, 17, [18])
        clock[0] += faustwatch.STUCK_S - 1
        faustwatch._watch_head(consumer, tp, 17, [18, 19])
        await asyncio.sleep(0)
        assert seeks == []
        clock[0] += 2
        faustwatch._watch_head(consumer, tp, 17, [18, 19])
        await asyncio.sleep(0.01)
        assert seeks == [(tp, 17)]

    asyncio.run(run())


def test_a_tail_nobody_acknowledged_or_holds_is_stuck():
    assert faustwatch.stuck_tail(committed=17, end=20, acked=[], in_flight=False)
    assert faustwatch.stuck_tail(committed=17, end=20, acked=None, in_flight=False)  # no ack since assignment
    assert not faustwatch.stuck_tail(17, 17, [], False)  # idle: everything committed
    assert not faustwatch.stuck_tail(17, 20, [], True)  # an agent still has it
    assert not faustwatch.stuck_tail(17, 20, [18], False)  # a stuck head, or a commit on its way
    assert not faustwatch.stuck_tail(None, 20, [], False)  # no committed offset before the first seek
    assert not faustwatch.stuck_tail(17, None, [], False)  # not fetched yet


class _Msg:
    def __init__(self, tp: str, generation: int, acked: bool = False) -> None:
        self.tp, self.generation_id, self.acked = tp, generation, acked


def test_only_unacknowledged_messages_of_the_current_generation_are_in_flight():
    messages = [_Msg("a", 5), _Msg("b", 5, acked=True), _Msg("c", 4), _Msg("d", 4), _Msg("d", 5)]
    # "c": fetched before the rebalance, skipped by the stream or refused by _ack: never acknowledged
    assert faustwatch.in_flight(messages, 5) == {"a", "d"}
    assert faustwatch.in_flight([], 5) == set()


class _Tails:
    """A Faust consumer as the tail watchdog sees it: one partition, 17 committed, 20 its end."""

    tp = TopicPartition("t.provenance", 2)

    def __init__(self) -> None:
        self.seeks: list = []
        self.flow_active = True
        self.app = type("App", (), {})()
        self.app.rebalancing = False
        self.app.consumer_generation_id = 5
        self.app.flow_control = type("Flow", (), {"is_active": lambda _: True})()
        self.app.topics = type("Topics", (), {"acks_enabled_for": lambda _, topic: topic == "t.provenance"})()
        self.end = 20
        self._committed_offset = {self.tp: 17}
        self._acked: dict = {}
        self._unacked_messages: set = set()
        self._read_offset = ReadOffsets({self.tp: 18})

    def assignment(self) -> set:
        return {self.tp, TopicPartition("t.changelog", 2)}

    def highwater(self, tp: TopicPartition) -> int:
        return self.end

    async def earliest_offsets(self, *tps: TopicPartition) -> dict:
        return {tp: 0 for tp in tps}

    async def seek_wait(self, partitions: dict) -> None:
        self.seeks.extend(partitions.items())


def test_the_tail_watchdog_fetches_again_only_after_the_tail_stayed_stuck(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(faustwatch, "clock", lambda: clock[0])

    async def run() -> _Tails:
        consumer = _Tails()
        faustwatch._watch_tails(consumer)
        clock[0] += faustwatch.STUCK_S - 1
        faustwatch._watch_tails(consumer)
        await asyncio.sleep(0.01)
        assert consumer.seeks == []
        clock[0] += 2
        faustwatch._watch_tails(consumer)
        await asyncio.sleep(0.01)
        assert consumer.seeks == [(consumer.tp, 17)]  # the changelog partition is not watched
        return consumer

    asyncio.run(run())


def _stays(consumer: _Tails, change, monkeypatch) -> list:  # noqa: ANN001
    """Seeks of a tail watched for twice ``STUCK_S``, with ``change`` applied to it halfway."""
    clock = [100.0]
    monkeypatch.setattr(faustwatch, "clock", lambda: clock[0])

    async def run() -> None:
        faustwatch._watch_tails(consumer)
        clock[0] += faustwatch.STUCK_S - 1
        change(consumer)
        faustwatch._watch_tails(consumer)
        clock[0] += faustwatch.STUCK_S - 1
        faustwatch._watch_tails(consumer)
        await asyncio.sleep(0.01)

    asyncio.run(run())
    return consumer.seeks


def test_the_tail_watchdog_leaves_an_idle_partition_alone(monkeypatch):
    consumer = _Tails()
    consumer.end = 17  # committed up to the end
    assert _stays(consumer, lambda c: None, monkeypatch) == []


def test_the_tail_watchdog_leaves_a_tail_an_agent_holds_alone(monkeypatch):
    consumer = _Tails()
    consumer._unacked_messages.add(_Msg(consumer.tp, 5))  # in a take buffer, or being handled
    assert _stays(consumer, lambda c: None, monkeypatch) == []


def test_fetch_progress_restarts_the_tail_watchdog(monkeypatch):
    consumer = _Tails()
    assert _stays(consumer, lambda c: c._read_offset.advance(c.tp, 19), monkeypatch) == []
    consumer = _Tails()
    assert _stays(consumer, lambda c: c._committed_offset.update({c.tp: 18}), monkeypatch) == []


def test_the_tail_watchdog_waits_out_a_rebalance(monkeypatch):
    consumer = _Tails()

    def rebalance(c: _Tails) -> None:
        c.app.rebalancing = True
        faustwatch._watch_tails(c)  # forgets what it watched; the rebalance's seek refetches anyway
        c.app.rebalancing = False

    assert _stays(consumer, rebalance, monkeypatch) == []


def test_resuming_flow_that_is_not_suspended_keeps_what_the_agents_queues_hold():
    # Faust's recovery resumes flow when it starts and again after seeking the stream partitions;
    # mode's resume emptied the queues both times, dropping what the seek had fetched and the fetch
    # loop had already delivered (the fetch position is past it: nothing delivers it again)
    from mode.utils.queues import FlowControlEvent, FlowControlQueue

    faustfix.install()
    flow = FlowControlEvent()  # suspended, as Faust's app starts
    queue = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    queue.put_nowait("fetched before the rebalance")
    flow.resume()
    assert queue.empty()  # suspended, then resumed: cleared as before
    queue.put_nowait("fetched by the seek")
    flow.resume()
    assert flow.is_active() and queue.qsize() == 1
    flow.suspend()
    flow.resume()
    assert queue.empty()


def test_a_message_the_streams_skip_is_not_acknowledged():
    # Faust's stream skips a message of an earlier generation (or while flow is stopped) and acks it;
    # the refetch after the rebalance must deliver it again, not find it done
    assert faustfix.stale(flow_active=False, generation=3, current=3)
    assert faustfix.stale(flow_active=True, generation=2, current=3)
    assert not faustfix.stale(flow_active=True, generation=3, current=3)
    assert not faustfix.stale(flow_active=True, generation=None, current=3)

    class Flow:
        active = True

        def is_active(self) -> bool:
            return self.active

    class App:
        flow_control = Flow()
        consumer_generation_id = 4

    class Msg:
        def __init__(self, generation: int) -> None:
            self.generation_id, self.acked = generation, False

    acked = []
    saved, faustfix._original_ack = faustfix._original_ack, lambda self, m: acked.append(m) or True
    try:
        consumer = type("C", (), {"app": App(), "_unacked_messages": set()})()
        old, new = Msg(3), Msg(4)
        consumer._unacked_messages.update({old, new})
        assert faustfix._ack(consumer, old) is False and old.acked and old not in consumer._unacked_messages
        assert faustfix._ack(consumer, new) is True and acked == [new]
    finally:
        faustfix._original_ack = saved
    assert faust_consumer.Consumer.ack is faustfix._ack




def test_offsets_deleted_by_retention_are_the_one_hole(monkeypatch):
    # the stuck head is below the partition's first offset: retention deleted it before it was read
    gaps, seeks = [], []
    tp = TopicPartition("t", 0)

    class Consumer:
        first = 40

        async def earliest_offsets(self, *tps):  # noqa: ANN002, ANN202
            return {tps[0]: self.first}

        async def _add_gap(self, tp, start, end):  # noqa: ANN001, ANN202
            gaps.append((start, end))

        _read_offset = ReadOffsets()

        async def seek_wait(self, partitions):  # noqa: ANN001, ANN202
            seeks.extend(partitions.values())

    consumer = Consumer()
    asyncio.run(faustwatch._refetch_head(consumer, tp, 17))
    assert gaps == [(17, 40)] and seeks == []
    consumer.first = 0
    asyncio.run(faustwatch._refetch_head(consumer, tp, 17))
    assert gaps == [(17, 40)] and seeks == [17]  # the records are there: fetch them again


def test_a_seek_back_is_marked_first_and_done_in_the_consumer_thread():
    calls = []
    tp = TopicPartition("t", 1)

    class Consumer:
        _read_offset = ReadOffsets()

        async def seek(self, tp, offset):  # noqa: ANN001, ANN202
            raise AssertionError("Faust's seek calls aiokafka outside the consumer thread")

        async def seek_wait(self, partitions):  # noqa: ANN001, ANN202
            calls.append((dict(partitions), self._read_offset.epoch[tp]))

    assert asyncio.run(faustwatch._seek_back(Consumer(), tp, 7)) is True
    assert calls == [({tp: 7}, 1)]  # the records in hand were put aside before the seek


def test_a_seek_back_on_a_partition_no_longer_ours_says_so():
    class Revoked:
        _read_offset = ReadOffsets()

        async def seek_wait(self, partitions):  # noqa: ANN001, ANN202
            raise RuntimeError("not assigned")

    assert asyncio.run(faustwatch._seek_back(Revoked(), TopicPartition("t", 0), 3)) is False


def test_the_agents_consumer_waits_for_data_instead_of_fetching_per_record():
    import faust

    faustfix.install()

    async def build() -> object:
        app = faust.App("faustfix-test", broker="kafka://127.0.0.1:9", web_enabled=False)
        thread = app.consumer._thread
        consumer = thread._create_worker_consumer(app.transport)
        try:
            return consumer._fetch_min_bytes, consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()

    assert asyncio.run(build()) == (faustfix.AGENT_FETCH_MIN_BYTES, faustfix.AGENT_FETCH_MAX_WAIT_MS)
    assert faustfix.AGENT_FETCH_MIN_BYTES > 1 and faustfix.AGENT_FETCH_MAX_WAIT_MS <= 250
