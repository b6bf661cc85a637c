"""The screen stage's rebalance bookkeeping: which fetched batches it screens and which it drops.

A batch is dropped unscreened when a rebalance came between its fetch and its processing (its
records are fetched again from the committed offsets). A rebalance *during* the fetch is different:
aiokafka resets the positions on the new assignment and the fetch returns records from there, so
that batch must be screened; dropping it lost them (two workers starting together lost the first
500 records of a partition, docs/benchmarks.md, session 9).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from agents.screen import ScreenStage

TP = TopicPartition("eu.raw.payments", 0)


def _stage() -> ScreenStage:
    ctx = SimpleNamespace(plans={}, screen=None, effects=SimpleNamespace(forget=lambda: None),
                          settings=SimpleNamespace(batch_size=500))
    return ScreenStage(ctx)


class _Consumer:
    """Returns one batch per ``getmany``; ``during`` runs while the fetch waits (a rebalance)."""

    def __init__(self, during=None) -> None:  # noqa: ANN001
        self.during = during

    async def getmany(self, timeout_ms: int, max_records: int) -> dict:  # noqa: ARG002
        if self.during is not None:
            await self.during()
        return {TP: [SimpleNamespace(offset=0)]}


def test_a_batch_fetched_across_a_rebalance_is_screened_not_dropped() -> None:
    async def run() -> None:
        stage = _stage()
        ahead = await stage._fetch(_Consumer(during=lambda: stage.on_partitions_revoked(set())), 50)
        assert stage._generation == 1  # the revocation happened during the fetch
        assert ahead.generation == stage._generation, "dropped as stale: its records would never be screened"

    asyncio.run(run())


def test_a_batch_fetched_before_a_rebalance_is_dropped() -> None:
    async def run() -> None:
        stage = _stage()
        ahead = await stage._fetch(_Consumer(), 50)
        await stage.on_partitions_revoked(set())  # the new owner fetches it again from the committed offset
        assert ahead.generation != stage._generation

    asyncio.run(run())


def _records(first: int, count: int) -> list:
    return [SimpleNamespace(topic=TP.topic, partition=TP.partition, offset=o, key=None, value=b"{}", headers=(),
                            timestamp=1) for o in range(first, first + count)]


class _Backlog:
    """A consumer holding ``sizes`` batches one after another; remembers the seeks."""

    def __init__(self, sizes: list[int]) -> None:
        self.batches, offset = [], 0
        for size in sizes:
            self.batches.append({TP: _records(offset, size)})
            offset += size
        self.seeks: list[tuple[TopicPartition, int]] = []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict:  # noqa: ARG002
        return self.batches.pop(0) if self.batches else {}

    def assignment(self) -> set:
        return {TP}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


def _stage_with_helpers(consumer: _Backlog) -> tuple[ScreenStage, list[int]]:
    """A stage whose pool records the size of each batch it is handed."""
    handed: list[int] = []

    async def screen(records, plans, fault, observe, helpers_only=False):  # noqa: ANN001, ANN202, ARG001
        handed.append(len(records))
        return []

    pool = SimpleNamespace(helpers=[object()], min_batch=250, screen=screen)
    ctx = SimpleNamespace(plans={"payments": SimpleNamespace(raw_topic=TP.topic)}, screen=None,
                          effects=SimpleNamespace(forget=lambda: None),
                          settings=SimpleNamespace(batch_size=500, batch_within_s=0.05), screen_pool=pool, fault_hook=None,
                          metrics=SimpleNamespace(screen_latency=SimpleNamespace(observe=lambda s: None)))
    stage = ScreenStage(ctx)
    stage.consumer = consumer
    return stage, handed


def test_a_backlog_is_handed_to_the_helpers_two_batches_ahead() -> None:
    async def run() -> None:
        from agents.screen import LOOK_AHEAD

        stage, handed = _stage_with_helpers(_Backlog([500, 500, 500, 500]))
        await stage._look_ahead()
        assert len(stage._ahead) == LOOK_AHEAD == 2  # the second waits in the helper's socket
        await asyncio.gather(*(a.screening for a in stage._ahead))
        assert handed == [500, 500]
        stage._ahead.popleft()  # the loop takes the next batch; one more is fetched behind the other
        await stage._look_ahead()
        assert [a.fetched[TP][0].offset for a in stage._ahead] == [500, 1000]

    asyncio.run(run())


def test_a_small_batch_ends_the_look_ahead_and_a_rewind_covers_every_batch_ahead() -> None:
    async def run() -> None:
        consumer = _Backlog([500, 100, 500])
        stage, handed = _stage_with_helpers(consumer)
        stage.committed[(TP.topic, TP.partition)] = 0
        await stage._look_ahead()
        # the small batch is kept to be screened as usual when its turn comes; nothing after it is fetched
        assert [len(a.fetched[TP]) for a in stage._ahead] == [500, 100]
        assert stage._ahead[1].screening is None and len(consumer.batches) == 1
        stage._rewind(consumer, {})
        assert not stage._ahead and consumer.seeks == [(TP, 0)]  # fetched again from the committed offset

    asyncio.run(run())


class _Arriving(_Backlog):
    """A ``_Backlog`` whose fetch can fail, or run a rebalance while it returns."""

    def __init__(self, sizes: list[int], fail: bool = False, during=None) -> None:  # noqa: ANN001
        super().__init__(sizes)
        self.fail, self.during, self.asked = fail, during, []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict:
        self.asked.append((timeout_ms, max_records))
        if self.during is not None:
            await self.during()
        if self.fail:
            raise KafkaConnectionError("broker gone")
        return await super().getmany(timeout_ms, max_records)


def _small_batch_ahead(consumer: _Arriving) -> ScreenStage:
    """A stage whose look-ahead took a small batch (offsets 0-99) once the batch in hand was screened."""
    stage, _ = _stage_with_helpers(consumer)
    stage.committed[(TP.topic, TP.partition)] = 0
    asyncio.run(stage._look_ahead())
    assert [len(a.fetched[TP]) for a in stage._ahead] == [100] and stage._ahead[0].screening is None
    return stage


def test_a_small_batch_fetched_ahead_is_topped_up_with_what_arrived_since_in_order() -> None:
    consumer = _Arriving([100, 60])  # 60 more records arrived while the batch in hand was sent
    stage = _small_batch_ahead(consumer)
    received_at = stage._ahead[0].received_at
    topped = asyncio.run(stage._fetch(consumer, 50, stage._ahead.popleft()))
    assert [r.offset for r in topped.fetched[TP]] == list(range(160))  # one batch, the partition in order
    assert consumer.asked[-1] == (0, 400)  # no wait, and never past the batch size
    assert topped.received_at == received_at and topped.generation == stage._generation


def test_a_rebalance_while_topping_up_drops_the_batch_fetched_ahead() -> None:
    consumer = _Arriving([100, 60])
    stage = _small_batch_ahead(consumer)
    consumer.during = lambda: stage.on_partitions_revoked(set())
    topped = asyncio.run(stage._fetch(consumer, 50, stage._ahead.popleft()))
    # what came back comes from the new assignment (screened); the batch ahead is fetched again by its owner
    assert topped.generation == stage._generation and [r.offset for r in topped.fetched[TP]] == list(range(100, 160))


def test_a_failed_top_up_fetches_the_batch_ahead_again_from_the_committed_offset() -> None:
    consumer = _Arriving([100])
    stage = _small_batch_ahead(consumer)

    async def stop() -> None:  # the loop ends after handling the failure
        stage._stopped.set()

    consumer.fail, consumer.during = True, stop
    asyncio.run(asyncio.wait_for(ScreenStage._screen_forever(stage), 5))
    assert consumer.seeks == [(TP, 0)] and not stage._ahead  # nothing taken from the consumer is lost


class _Committing(_Backlog):
    """A consumer that remembers what was committed."""

    def __init__(self) -> None:
        super().__init__([])
        self.commits: list[dict] = []

    async def commit(self, offsets: dict) -> None:
        self.commits.append(dict(offsets))


def _screened_once() -> tuple[ScreenStage, _Committing, asyncio.Future]:
    """A stage as ``_process`` leaves it after a batch of offsets 0-9 (screened, its provenance on
    its way), its consumer, and that provenance send (unresolved)."""
    stage, provenance = _stage(), asyncio.get_running_loop().create_future()
    stage.committed[(TP.topic, TP.partition)] = 0
    stage._screened = {TP: 10}
    stage._provenance = provenance
    return stage, _Committing(), provenance


def test_a_commit_waits_for_the_provenance_of_the_batches_it_covers() -> None:
    async def run() -> None:
        stage, consumer, provenance = _screened_once()
        committing = asyncio.ensure_future(stage._commit(consumer))
        await asyncio.sleep(0.05)
        assert not consumer.commits, "committed before the batch's provenance was acknowledged"
        provenance.set_result([])
        await committing
        assert consumer.commits == [{TP: 10}] and stage.committed[(TP.topic, TP.partition)] == 10
        assert stage._provenance is None

    asyncio.run(run())


def test_provenance_the_broker_failed_is_never_committed_and_its_batches_are_screened_again() -> None:
    from aiokafka.errors import KafkaTimeoutError

    async def run() -> None:
        stage, consumer, provenance = _screened_once()
        provenance.set_exception(KafkaTimeoutError())
        await stage._commit(consumer)
        assert not consumer.commits
        assert consumer.seeks == [(TP, 0)] and not stage._screened  # fetched again from the committed offset
        assert stage.committed[(TP.topic, TP.partition)] == 0 and stage._provenance is None

    asyncio.run(run())


def test_a_stop_while_the_commit_waits_leaves_the_send_alone_and_commits_nothing() -> None:
    async def run() -> None:
        stage, consumer, provenance = _screened_once()
        committing = asyncio.ensure_future(stage._commit(consumer))
        await asyncio.sleep(0.01)
        committing.cancel()
        try:
            await committing
        except asyncio.CancelledError:
            pass
        assert not provenance.cancelled(), "the send itself was cancelled"
        assert not consumer.commits and stage._provenance is provenance  # still to be awaited before a commit

    asyncio.run(run())
