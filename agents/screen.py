"""screen: every ``R.raw.D`` record to exactly one outcome topic, on the worker's own Kafka consumer.

The screen stage is the fleet's hot path, so it does not go through Faust's streams: a Faust agent
costs a queue hop, an event object and sensor callbacks per record, and its offset bookkeeping is
where the rebalance bugs live (pipeline/faustfix.py). Here one aiokafka consumer per worker, in the
group ``<app id>.screen``, reads every raw topic in batches the way Kafka Streams does:

1. ``getmany`` a batch; screen it (pipeline.batch); every output is acknowledged by the broker
   before ``screen_batch`` returns, and the batch's provenance records are on their way (the next
   batch sends its own only once they are acknowledged);
2. commit, per partition, the offset after the last record screened, at most every
   ``COMMIT_INTERVAL_S`` (as Kafka Streams commits on an interval), once the provenance of every
   batch it covers is acknowledged: a commit is a round trip the loop waits for, ~15-20 ms on a
   loaded broker, and paying it per fetch added that to every batch's latency. When that
   provenance failed, nothing is committed and the batches since the last commit are fetched and
   screened again (pipeline.effects keeps their outputs from being sent twice).

A crash between 1 and 2 makes the next owner process the batches since the last commit again;
pipeline.effects makes sure it sends nothing twice (its intents cover every batch not committed).
On a rebalance the revocation waits for the batch in hand (it finishes and commits), and a batch
fetched under an earlier generation is dropped unprocessed: its records are fetched again from the
committed offset by whoever owns them now.

With screen helpers (pipeline/screenpool.py), step 1 is pipelined: once a batch is screened and
before it is sent, the records the consumer already holds are fetched as the next batches (up to
``LOOK_AHEAD``) and handed to the helpers, which screen them while this batch waits for the broker.
Nothing of a batch ahead is sent or committed before the batch in hand is done; a rewind or
rebalance drops them all, and their records are fetched again from the committed offsets.

It runs inside the Faust worker as a service: same process, producer, metrics, web and health.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from mode import Service

from pipeline import heap
from pipeline.batch import FenceClosed, screen_ahead, screen_batch
from pipeline.context import FleetContext
from pipeline.outputs import now_iso
from pipeline.screenpool import ScreenPool
from pipeline.topics import screen_group
from schemas.decision import RawRecord

log = logging.getLogger(__name__)
COMMIT_INTERVAL_S = 0.5
# Batches fetched ahead and handed to the helpers while the batch in hand is sent. Two keep a
# helper busy: the second waits in its socket while it screens the first, so it does not idle
# while the worker's thread attaches seals and sends (one batch ahead left it idle ~20% of a
# backlog; docs/benchmarks.md, session 10).
LOOK_AHEAD = 2


def raw_record(record: Any) -> RawRecord:
    """An aiokafka ``ConsumerRecord`` as the screening core's input."""
    return RawRecord(record.topic, record.partition, record.offset, record.key, record.value,
                     tuple(record.headers or ()), record.timestamp)


@dataclass
class Ahead:
    """A fetched batch; when fetched ahead, with its groups and its screening already started."""

    generation: int
    fetched: dict[TopicPartition, list]
    groups: list[tuple[Any, list[RawRecord]]] | None = None
    screening: asyncio.Future | None = None
    received_at: str | None = None


def _retrieved(future: asyncio.Future) -> None:
    """Mark a dropped look-ahead's outcome as seen (asyncio logs unretrieved exceptions)."""
    if not future.cancelled():
        future.exception()


class ScreenStage(Service, ConsumerRebalanceListener):
    """The raw topics' consumer loop; one per worker process."""

    def __init__(self, ctx: FleetContext, **kwargs: Any) -> None:
        self.ctx = ctx
        ctx.screen = self
        self.plans = {plan.raw_topic: plan for plan in ctx.plans.values()}
        self.consumer: AIOKafkaConsumer | None = None
        self.committed: dict[tuple[str, int], int] = {}  # next offset to read, per owned partition
        self._screened: dict[TopicPartition, int] = {}  # screened, acknowledged, not yet committed
        self._committed_at = 0.0  # monotonic time of the last commit
        self._generation = 0  # bumped on every revocation
        self._failures = 0  # batches in a row the broker failed (for the retry delay)
        self._lock = asyncio.Lock()  # held while a batch is processed and committed
        self._ahead: deque[Ahead] = deque()  # the next batches, fetched and being screened by the helpers
        self._provenance: asyncio.Future | None = None  # the last batch's provenance send, maybe not yet acked
        super().__init__(**kwargs)

    # --- rebalance ---------------------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self._lock:  # the batch in hand finishes and commits first
            if self.consumer is not None:
                await self._commit(self.consumer)
            self._screened.clear()
            self._drop_ahead()  # its partitions' owners fetch it again from the committed offsets
            self._generation += 1
            self.committed.clear()
            self.ctx.effects.forget()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        for tp in assigned:
            offset = await consumer.committed(tp)
            self.committed[(tp.topic, tp.partition)] = offset or 0
        log.info("screen stage owns %d raw partitions", len(assigned))

    # --- the loop ------------------------------------------------------------------------------

    async def on_start(self) -> None:
        settings = self.ctx.settings
        session_ms = int(settings.session_timeout_s * 1000)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=screen_group(self.ctx.app.conf.id),
            client_id=f"{self.ctx.app.conf.id}.screen",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=settings.batch_size,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(1000, session_ms // 3),
            rebalance_timeout_ms=int(settings.rebalance_timeout_s * 1000),
            fetch_max_bytes=8 * 2**20,
            max_partition_fetch_bytes=2 * 2**20,
        )
        if settings.screen_processes:
            pool = ScreenPool(settings.screen_processes, self.ctx.loaded, settings.key_ring(),
                              settings.test_faults if settings.enable_test_hooks else None,
                              max(p.rules.detection_budget_ms for p in self.plans.values()),
                              (settings.log_level, settings.log_format), settings.batch_size)
            await pool.start()
            self.ctx.screen_pool = pool
        self.consumer.subscribe(sorted(self.plans), listener=self)
        await self.consumer.start()
        heap.freeze()  # started: what exists now lives as long as the process (pipeline/heap.py)

    async def on_stop(self) -> None:
        if self.consumer is not None:
            consumer = self.consumer
            async with self._lock:  # the batch in hand finishes first; what was screened is committed
                await self._commit(consumer)
            self.consumer = None
            await consumer.stop()
        for ahead in self._ahead:
            if ahead.screening is not None:
                ahead.screening.cancel()
        self._drop_ahead()
        if self.ctx.screen_pool is not None:
            self.ctx.screen_pool.stop()
            self.ctx.screen_pool = None
        await self.ctx.effects.stop()  # its recovery reader and watermark client

    @Service.task
    async def _screen_forever(self) -> None:
        within_ms = max(1, int(self.ctx.settings.batch_within_s * 1000))
        while not self.should_stop:
            consumer = self.consumer
            if consumer is None:
                await self.sleep(0.1)
                continue
            if self._ahead and self._ahead[0].screening is not None:  # fetched, and handed to the
                ahead = self._ahead.popleft()  # helpers, while an earlier batch was sent
            else:
                # a small batch fetched ahead is topped up with what arrived since (see _top_up)
                carried = self._ahead.popleft() if self._ahead else None
                try:
                    ahead = await self._fetch(consumer, within_ms, carried)
                except (IllegalStateError, KafkaError) as exc:
                    if carried is not None and carried.generation == self._generation:
                        self._rewind(consumer, carried.fetched)  # its records are fetched again
                    if self.should_stop:
                        return
                    log.warning("screen stage fetch failed (%s); retrying", type(exc).__name__)
                    await self.sleep(1.0)
                    continue
            if not ahead.fetched:
                if self._screened:  # idle: commit what was screened
                    async with self._lock:
                        await self._commit(consumer)
                continue
            if self.ctx.fence is not None and self.ctx.fence.closed:
                await self._fenced(consumer, ahead.fetched)  # outside the lock: a rebalance may go on meanwhile
                continue
            await self._process(consumer, ahead)

    async def _fetch(self, consumer: AIOKafkaConsumer, within_ms: int, carried: Ahead | None = None) -> Ahead:
        """The next batch, tagged with the generation it was fetched under.

        The tag is read once the fetch returns, not before it starts: a rebalance during the wait
        has already reset the positions to the committed offsets, and what the fetch then returns
        comes from the new assignment (aiokafka drops records fetched for a revoked one). Tagged
        with the generation from before the wait, that batch was dropped as stale while the
        position had moved past it, and the next commit covered records never screened: two
        workers starting together lost the first 500 records of a partition (docs/benchmarks.md,
        session 9)."""
        if carried is not None and carried.generation == self._generation:
            return await self._top_up(consumer, carried)  # tagged once its fetch returns, as here
        fetched = await consumer.getmany(timeout_ms=within_ms, max_records=self.ctx.settings.batch_size)
        return Ahead(self._generation, fetched)

    async def _top_up(self, consumer: AIOKafkaConsumer, carried: Ahead) -> Ahead:
        """A small batch fetched ahead (no backlog), with what the consumer received since added.

        The look-ahead takes what the consumer holds once a batch is screened; when that is small,
        it waits, unscreened, while the batch in hand is sent. Taken as it was, its records had
        waited a whole send already and what arrived meanwhile waited for the batch after it, and
        the loop could keep taking the next batch that early, batch after batch: at 1,250 events/s
        the median ingress-to-cleared latency was 116-313 ms in nine of ten runs, 70-94 ms in twelve
        of twelve with the top-up (docs/benchmarks.md, session 15)."""
        room = self.ctx.settings.batch_size - sum(len(records) for records in carried.fetched.values())
        more = await consumer.getmany(timeout_ms=0, max_records=room) if room > 0 else {}
        if carried.generation != self._generation:  # a rebalance meanwhile: the carried records are
            return Ahead(self._generation, more)  # fetched again by their partitions' owners
        fetched = {tp: list(records) for tp, records in carried.fetched.items()}
        for tp, records in more.items():
            fetched.setdefault(tp, []).extend(records)  # each partition's records follow on in order
        return Ahead(self._generation, fetched, received_at=carried.received_at)

    def _groups(self, fetched: dict[TopicPartition, list]) -> list[tuple[Any, list[RawRecord]]]:
        by_topic: dict[str, list[RawRecord]] = {}
        for tp, records in fetched.items():
            by_topic.setdefault(tp.topic, []).extend(raw_record(r) for r in records)
        return [(self.plans[topic], records) for topic, records in by_topic.items()]

    async def _look_ahead(self) -> None:
        """Fetch what the consumer already holds of the next batches (up to ``LOOK_AHEAD``) and,
        while each is a backlog's batch (half the batch size or more), start the helpers on it, so
        they screen it while this worker sends the batch in hand (pipelining). A smaller batch ends
        the look-ahead: when its turn comes it is topped up (:meth:`_top_up`) and screened as
        usual. Without helpers the next batch is fetched and screened as usual, after this one."""
        pool, consumer = self.ctx.screen_pool, self.consumer
        if pool is None or not pool.helpers or consumer is None:
            return
        while len(self._ahead) < LOOK_AHEAD and (not self._ahead or self._ahead[-1].screening is not None):
            try:
                fetched = await consumer.getmany(timeout_ms=0, max_records=self.ctx.settings.batch_size)
            except (IllegalStateError, KafkaError):
                return  # the loop's own fetch retries and logs
            if not fetched:
                return
            if sum(len(records) for records in fetched.values()) < pool.min_batch:  # no backlog: screened as usual
                self._ahead.append(Ahead(self._generation, fetched, received_at=now_iso()))
                return
            groups = self._groups(fetched)
            screening = asyncio.ensure_future(screen_ahead(self.ctx, groups))
            screening.add_done_callback(_retrieved)
            self._ahead.append(Ahead(self._generation, fetched, groups, screening, now_iso()))

    def _drop_ahead(self) -> None:
        """Forget the batches fetched ahead: their records are fetched again from the committed
        offsets (the helpers finish screening them; the results are not used)."""
        self._ahead.clear()

    async def _process(self, consumer: AIOKafkaConsumer, ahead: Ahead) -> None:
        fetched = ahead.fetched
        async with self._lock:
            if ahead.generation != self._generation:
                return  # fetched before a rebalance: the partitions' owners fetch it again
            try:
                # the previous batch's provenance stays ours to await until this batch has awaited it
                # (a stop in between commits that batch only once it is acknowledged)
                provenance = await screen_batch(
                    self.ctx, ahead.groups or self._groups(fetched), screened=ahead.screening,
                    ahead=self._look_ahead, received_at=ahead.received_at, provenance_before=self._provenance)
            except asyncio.CancelledError:
                raise
            except FenceClosed:
                self._rewind(consumer, fetched)
                return  # the loop waits at the fence before its next batch
            except KafkaError as exc:
                await self._start_over(consumer, fetched, exc)
                return
            except Exception as exc:  # noqa: BLE001 - stop the worker; nothing of the batch is committed
                await self._crash(exc)
                raise
            if provenance is not None:
                provenance.add_done_callback(_retrieved)  # a rewind may drop it: its batch is screened again
            self._provenance = provenance
            self._screened.update({tp: records[-1].offset + 1 for tp, records in fetched.items()})
            self._failures = 0
            if time.monotonic() - self._committed_at >= COMMIT_INTERVAL_S:
                await self._commit(consumer)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        """Commit what was screened since the last commit (with the lock held), once the provenance
        of those batches is acknowledged; if it failed, screen them again instead."""
        pending = self._provenance
        if pending is not None:
            try:
                await asyncio.shield(pending)  # a stop cancels this wait, not the send
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise
                return self._provenance_lost(consumer, "cancelled")
            except KafkaError as exc:
                return self._provenance_lost(consumer, type(exc).__name__)
            except Exception as exc:  # noqa: BLE001 - as a batch's own failure: stop the worker, commit nothing
                await self._crash(exc)
                raise
            self._provenance = None
        offsets, self._screened = self._screened, {}
        self._committed_at = time.monotonic()
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # The group moved on without us; the new owner reads from the last commit and
            # pipeline.effects finds what these batches already sent.
            log.warning("screen stage commit failed (%s); the next owner resumes", type(exc).__name__)
            return
        for tp, offset in offsets.items():
            self.committed[(tp.topic, tp.partition)] = offset

    async def _crash(self, exc: Exception) -> None:
        """Stop the worker: the screen stage failed in a way no retry mends (nothing is committed)."""
        log.error("agent screen failed (%s); stopping the worker", type(exc).__name__)
        await self.ctx.app.crash(exc)

    def _provenance_lost(self, consumer: AIOKafkaConsumer, why: str) -> None:
        """The last batch's provenance never reached the broker: commit nothing, and fetch and screen
        every batch since the last commit again (their outputs are read back, not sent twice)."""
        log.warning("screen stage: a provenance send failed (%s); the batches since the last commit are "
                    "screened again", why)
        self._rewind(consumer, {})

    async def _start_over(self, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, list], exc: Exception) -> None:
        """The broker failed a request mid-batch (it restarted, or a leader moved): go back to the
        committed offsets and recover as a new owner would, reading back what this batch already sent
        (its intent was acknowledged before any output), so nothing is sent twice or lost."""
        self._failures += 1
        delay = min(5.0, 0.5 * 2 ** min(self._failures, 4))
        log.warning("screen stage: the broker failed a request (%s); retrying the batch in %.1fs",
                    type(exc).__name__, delay)
        self._rewind(consumer, fetched)
        await self.sleep(delay)

    async def _fenced(self, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, list]) -> None:
        """A broker outside the policy's racks is in the cluster: put the batch back and wait."""
        self._rewind(consumer, fetched)
        await self.ctx.gate()

    def _rewind(self, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, list]) -> None:
        """Fetch again from the committed offsets, recovering as a new owner would: whatever a failed
        attempt, or a batch screened since the last commit, sent is read back through its
        acknowledged intent, never sent twice. (Committing those batches instead would leave them
        outside the next intent, which ``forget`` starts afresh.)"""
        self.ctx.effects.forget()
        self._provenance = None  # its batch is screened again, and its provenance sent again
        later = {tp for ahead in self._ahead for tp in ahead.fetched}
        self._drop_ahead()
        for tp in {*fetched, *self._screened, *later}:
            if tp in consumer.assignment():
                consumer.seek(tp, self.committed.get((tp.topic, tp.partition), 0))
        self._screened.clear()

    async def lags(self) -> dict[tuple[str, int], int]:
        """High watermark minus committed offset, per owned raw partition."""
        consumer = self.consumer
        if consumer is None:
            return {}
        tps = list(consumer.assignment())
        if not tps:
            return {}
        ends = await consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): max(0, ends[tp] - self.committed.get((tp.topic, tp.partition), 0))
                for tp in tps}


def register_screen(ctx: FleetContext) -> None:
    """Start the screen stage with the app, once table recovery is done (Faust's extra services)."""

    class Stage(ScreenStage):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(ctx, **kwargs)

    ctx.app.service(Stage)
