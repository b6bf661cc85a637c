"""The intent bookkeeping of pipeline.effects (the broker side is covered by tests/faults)."""

from __future__ import annotations

import orjson

from pipeline.effects import EffectLog, Emitted, Recovered

SOURCE = ("eu.raw.payments", 0)
CLEARED0, CLEARED1 = ("eu.cleared.payments", 0), ("eu.cleared.payments", 1)


def log() -> EffectLog:
    return EffectLog("127.0.0.1:1", "eu.screen.intents")  # never connects in these tests


def test_a_first_batch_needs_an_intent():
    assert not log().covered(SOURCE, 0, 9, 0, {CLEARED0})


def test_an_intent_covers_later_batches_to_the_partitions_it_names():
    effects = log()
    key, value = effects.intent(SOURCE, 0, 9, 0, {CLEARED0: 100, CLEARED1: 50})
    assert key == b"eu.raw.payments:0"
    assert orjson.loads(value) == {"source": ["eu.raw.payments", 0], "first_offset": 0,
                                   "destinations": [["eu.cleared.payments", 0, 100], ["eu.cleared.payments", 1, 50]]}
    assert effects.covered(SOURCE, 10, 19, 10, {CLEARED0})
    assert effects.covered(SOURCE, 20, 29, 20, {CLEARED0, CLEARED1})


def test_a_batch_sending_to_a_partition_the_intent_does_not_name_needs_a_new_one():
    effects = log()
    effects.intent(SOURCE, 0, 9, 0, {CLEARED0: 100})
    assert not effects.covered(SOURCE, 10, 19, 10, {CLEARED0, CLEARED1})


def test_an_old_intent_is_replaced():
    effects = log()
    effects.intent(SOURCE, 0, 9, 0, {CLEARED0: 100})
    effects.refresh_s = 0.0
    assert not effects.covered(SOURCE, 10, 19, 10, {CLEARED0})


def test_a_rebalance_forgets_every_intent():
    effects = log()
    effects.intent(SOURCE, 0, 9, 0, {CLEARED0: 100})
    effects.forget()
    assert not effects.covered(SOURCE, 10, 19, 10, {CLEARED0})


def test_a_new_intent_keeps_an_uncommitted_covered_batch_and_its_lower_watermarks():
    effects = log()
    effects.intent(SOURCE, 0, 9, 0, {CLEARED0: 100})
    assert effects.covered(SOURCE, 10, 19, 10, {CLEARED0})  # sent, but its commit failed: still 10
    _, value = effects.intent(SOURCE, 20, 29, 10, {CLEARED0: 180, CLEARED1: 7})
    intent = orjson.loads(value)
    assert intent["first_offset"] == 10
    assert intent["destinations"] == [["eu.cleared.payments", 0, 100], ["eu.cleared.payments", 1, 7]]


def test_committed_batches_leave_the_window():
    effects = log()
    effects.intent(SOURCE, 0, 9, 0, {CLEARED0: 100})
    _, value = effects.intent(SOURCE, 10, 19, 10, {CLEARED0: 150})
    assert orjson.loads(value)["first_offset"] == 10


def test_only_events_from_the_recovered_window_count_as_emitted():
    where = Emitted("eu.cleared.payments", 1, 42)
    recovered = Recovered(first_offset=10, emitted={("e1", "eu.cleared.payments"): where})
    assert recovered.lookup(12, "e1", "eu.cleared.payments") == where
    assert recovered.lookup(12, "e1", "eu.rejected.payments") is None
    assert recovered.lookup(9, "e1", "eu.cleared.payments") is None
    assert Recovered().lookup(12, "e1", "eu.cleared.payments") is None


class Meta:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset


def test_watermarks_of_partitions_this_worker_sent_to_come_from_its_acks_without_asking_the_broker():
    import asyncio

    effects = log()  # its broker address is unreachable: asking it would fail
    effects.acked([Meta(*CLEARED0, 41), Meta(*CLEARED0, 40), Meta(*CLEARED1, 7)])
    assert asyncio.run(effects.highwaters([CLEARED0, CLEARED1])) == {CLEARED0: 42, CLEARED1: 8}
    effects.acked([Meta(*CLEARED0, 12)])  # an older ack arriving late never lowers the mark
    assert asyncio.run(effects.highwaters([CLEARED0])) == {CLEARED0: 42}
    effects.forget()  # after a rebalance the broker is asked again
    assert effects._sent == {}  # noqa: SLF001
