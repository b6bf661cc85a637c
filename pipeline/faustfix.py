"""Fixes to Faust's offset bookkeeping that at-least-once depends on (faust-streaming 0.15.3).

Faust hands fetched messages to agents through queues and commits, per partition, the end of the
run of *acknowledged* offsets that starts at the committed offset. Offsets the broker has no record
for (transaction markers, compacted records) are remembered as *gaps* and count as acknowledged.
Three defects in that bookkeeping lose or strand messages around a rebalance; the fault suite hit
each of them (tests/faults/test_rebalance.py):

1. **A gap included the message that revealed it.** ``_add_gap(tp, r + 1, offset)`` added the
   interval ``[r + 1, offset + 1)``, so the message at ``offset`` counted as acknowledged before any
   agent saw it: a commit could pass it, and a kill then lost it (upstream issue #606 and PR #707).
2. **Gaps were measured from a stale read offset.** After a seek (a rebalance seeks every partition
   to its committed offset) messages fetched before the seek kept arriving and moved the read offset
   ahead; the difference to the next message was taken for a gap, so real, unprocessed records were
   acknowledged unseen. The same stale read offset then made Faust *drop* the records the seek
   fetched again ("DROPPED MESSAGE"); the ones no agent had processed were never acknowledged, and
   commits stopped for good (upstream issue #596).
3. **The head of the acknowledged run was allowed one offset of slack**, so the committed offset
   itself could be skipped while it was still in flight (#606).

The fixes: a message is compared only with the previous message *of the same fetch sequence* (a
seek starts a new sequence: :class:`ReadOffsets` counts seeks per partition); holes are no longer
inferred from the fetch at all (defect 10); messages fetched before a seek are left to the seek's
own fetch; a message is dropped only when it is below the committed offset or
already acknowledged; and a commit needs the acknowledged run to start exactly at the committed
offset. Agents downstream are idempotent, so a message delivered twice costs time, never
correctness. The pure parts are functions here and tested in tests/unit/test_faustfix.py.

4. **The producer is idempotent only inside transactions.** A send whose acknowledgement a
   restarting broker lost is retried by aiokafka and appended twice (the broker-restart fault test
   found an event id twice on ``R.held``). Every producer of the worker enables idempotence.
5. **"Seek to committed" did not seek a partition with nothing committed** (or committed 0): aiokafka
   skips those, so the fetcher went on from where it was while Faust's read offsets said "seeked"
   and the fetch loop rightly discarded the messages in hand as fetched before the seek. Nothing
   fetched them again, later acknowledgements were committed past them, and their provenance was
   lost (the crash fault test, under load: Faust seeks to committed when recovery ends and whenever
   it fetches with flow stopped, both early in a fresh group's life). Such partitions are now sought
   to their beginning, as ``auto_offset_reset=earliest`` would place a fresh group.
6. **A failed agent's messages are acknowledged anyway**: Faust acknowledges the message (or the
   ``take`` buffer) in a ``finally`` when the agent's body raises, and commits acknowledged offsets
   while the worker shuts down, so the failed batch would be committed unprocessed.
   :func:`stop_commits` is called before an agent crashes the worker; the restarted worker
   processes the batch again from the last commit.
7. **A seek is marked after it happened.** The consumer thread seeks, then Faust bumps the read
   offsets; records the seek itself fetched in between look "fetched before the seek" and are put
   aside with nothing to fetch them again, and the next record after them looked like the end of a
   hole. :class:`Owed` remembers what was put aside; the loop seeks back to it before handling
   anything after it (the crash fault test lost provenance records this way under load). And as
   a last line of defence, a committed offset whose message is not acknowledged while later ones
   are is fetched again after ``STUCK_S`` (:func:`pipeline.faustwatch.stuck_head`).
8. **Commits without a committed offset.** Faust forgets the committed offset of a revoked
   partition; an agent finishing a message it held then acknowledged it, and the commit ran from
   that message, past the ones the rebalance had cleared from the agents' queues (the rebalance
   fault test lost provenance records this way). Nothing is committed for a partition until a seek
   has told its committed offset; a partition with none gets its first offset.
9. **Skipped messages were acknowledged.** Faust's streams skip a message fetched in an earlier
   generation of the group, or while flow is stopped, and acknowledge it unprocessed so that lag
   does not grow; the fetch after the rebalance then took it for done. Those acknowledgements are
   refused (:func:`stale`), so the message is delivered again.
10. **Holes inferred from the fetch.** Faust takes offsets skipped between two fetched records
    for holes (transaction markers, compaction) and counts them acknowledged. With defect 7 the
    seek's first records can be delivered before the seek is marked, and the next record then
    seemed to follow a hole over records the agents still held; the commit passed them (the crash
    fault test lost provenance records this way). The topics Faust reads here are never compacted
    and never written in transactions, so the fetch loop infers no holes at all: an offset is
    committed only once an agent acknowledged it. The one real hole, records deleted by retention
    before they were read, is found by the watchdog of defect 7 from the partition's first offset.
11. **Stuck tails.** Faust's recovery resumes flow when it starts and again after seeking the
    stream partitions to their committed offsets, and mode's ``FlowControlEvent.resume`` empties
    every agent queue it manages. Records the seek fetched and the fetch loop delivered in between
    were thrown out of the queues unacknowledged, with the fetch position already past them. And
    with defect 7, the seek's records after the first few arrive looking fetched before it and are
    put aside, and :class:`Owed` seeks back to them only when a later record arrives. Either way,
    when later offsets were acknowledged the watchdog of defect 7 fetched the head again; when they
    were a partition's last records (the stream had ended, as it has by the time a rebalance after
    a kill completes) nothing did, and that partition's commits stopped for good (the rebalance
    fault test under heavy load: the last 1-3 records of an ``R.provenance`` partition; the
    same on ``R.held``, whose lag nothing reported). Flow that is not suspended is now resumed
    without clearing anything, and a second watchdog fetches a stuck *tail* again after
    ``STUCK_S`` (:func:`pipeline.faustwatch.stuck_tail`): records past the committed offset, none acknowledged, none
    in flight, no fetch progress.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any
from weakref import WeakSet

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport import consumer as faust_consumer
from faust.utils.functional import consecutive_numbers
from mode.utils.queues import FlowControlEvent

from pipeline.faustwatch import _seek_back, _watch_head, _watch_tails

log = logging.getLogger(__name__)


class ReadOffsets(defaultdict):
    """Faust's per-partition read offsets; every write from outside the fetch loop is a seek.

    Faust writes read offsets when it seeks (``seek``, ``perform_seek``, ``_seek_wait``) and forgets
    them when partitions are revoked; each such write bumps the partition's seek epoch, so the fetch
    loop knows its previous message no longer precedes the next one.
    """

    def __init__(self, initial: Any = ()) -> None:
        super().__init__(lambda: None)
        self.epoch: defaultdict[Any, int] = defaultdict(int)
        for tp, offset in dict(initial).items():
            super().__setitem__(tp, offset)

    def __missing__(self, tp: Any) -> None:
        return None  # reading an unknown partition is not a seek (defaultdict would store it)

    def __setitem__(self, tp: Any, offset: Any) -> None:
        self.epoch[tp] += 1
        super().__setitem__(tp, offset)

    def __delitem__(self, tp: Any) -> None:
        self.epoch[tp] += 1
        super().__delitem__(tp)

    def pop(self, tp: Any, *default: Any) -> Any:
        self.epoch[tp] += 1
        return super().pop(tp, *default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for tp, offset in dict(*args, **kwargs).items():
            self[tp] = offset

    def advance(self, tp: Any, offset: int) -> None:
        """The fetch loop read ``offset`` (not a seek)."""
        super().__setitem__(tp, offset)


class Owed(dict):
    """Per partition, the lowest offset the fetch loop put aside unprocessed and no fetch has
    delivered again since.

    Faust marks a seek in its read offsets only after the consumer thread has sought, so the seek's
    own first records can arrive looking as if they were fetched before it and be put aside, with
    nothing left to fetch them again (the crash fault test lost provenance records this way, then
    took the missing offsets for a hole and committed past them). An owed offset must be delivered
    again, or be committed or acknowledged meanwhile, before anything after it is handled; if the
    fetch has gone past it, the loop seeks back to it.
    """

    def put_aside(self, tp: Any, offset: int) -> None:
        self[tp] = min(self.get(tp, offset), offset)

    def due(self, tp: Any, offset: int, committed: int | None, acked: Any) -> int | None:
        """The offset to seek back to before the message at ``offset`` may be handled, or ``None``.

        ``committed`` and ``acked``: the partition's committed offset and acknowledged offsets
        (an owed offset among them needs no delivery any more).
        """
        owed = self.get(tp)
        if owed is None or offset < owed:
            return None
        if offset == owed or accounted(owed, committed, acked):
            del self[tp]
            return None
        return owed


def accounted(offset: int, committed: int | None, acked: Any) -> bool:
    """Whether ``offset`` is committed or acknowledged: it needs no delivery."""
    return (committed is not None and offset < committed) or offset in acked


def new_offset(committed: int | None, acked: list[int]) -> tuple[int | None, int]:
    """The offset to commit (or ``None``) and how many leading entries of sorted ``acked`` it covers.

    ``acked`` must already hold the gap offsets up to its maximum (as Faust merges them). The run
    must start exactly at ``committed``: anything else means a message at the head is still in
    flight. Without a committed offset nothing is committed: between a revocation and the seek
    that follows the next assignment Faust knows none, and a message acknowledged then (an agent
    finishing what it held) would otherwise commit past every message the rebalance took out of
    the agents' queues.
    """
    if not acked or committed is None or acked[0] != committed:
        return None, 0
    run = next(consecutive_numbers(acked))
    return run[-1] + 1, len(run)


def _new_offset(self: Any, tp: Any) -> int | None:
    acked = self._acked[tp]
    if not acked:
        return None
    committed = self._committed_offset[tp]
    floor = committed if committed is not None else -1
    max_offset = max(acked)
    gaps = self._gap[tp]
    if gaps:
        covered = gaps.overlap(0, max_offset + 1)
        if covered:
            extra = {o for iv in covered for o in range(iv.begin, iv.end) if o >= floor}
            gaps.chop(0, max(iv.end for iv in covered))
            acked.extend(extra)
            self._acked_index[tp].update(extra)
    # sorted, unique, nothing below the committed offset (a gap can repeat an acked offset)
    acked[:] = sorted({o for o in acked if o >= floor})
    offset, used = new_offset(committed, acked)
    if offset is None:
        _watch_head(self, tp, committed, acked)
        return None
    del acked[:used]
    self._acked_index[tp].difference_update(range(offset - used, offset))
    return offset


async def _add_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    """Record ``[offset_from, offset_to)`` as holding no records (end exclusive, unlike Faust's)."""
    committed = self._committed_offset[tp]
    if committed is not None:
        offset_from = max(offset_from, committed)
    if offset_from < offset_to:
        gaps = self._gap[tp]
        gaps.addi(offset_from, offset_to)
        await asyncio.sleep(0)
        gaps.merge_overlaps()


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - exercised by the fault suite
    """Faust's fetch loop, with sequences, holes and drops decided as the module docstring says."""
    if not isinstance(self._read_offset, ReadOffsets):
        self._read_offset = ReadOffsets(self._read_offset)
    read = self._read_offset
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    flag_consumer_fetching = faust_consumer.CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    seen_epoch: dict[Any, int] = {}  # the seek epoch of each partition's last message here
    delivered = self._residency_delivered = WeakSet()  # in flight until acknowledged, or dropped and freed
    owed = Owed()
    num_since_yield = 0
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = getmany(timeout=1.0)
            await self.sleep(0)
            if self.should_stop:
                continue
            fetched_at: dict[Any, int] | None = None
            async for tp, message in ait:
                if fetched_at is None:  # the batch was fetched at these epochs (no await since)
                    fetched_at = dict(read.epoch)
                num_since_yield += 1
                if num_since_yield > 100:
                    await asyncio.sleep(0)
                    num_since_yield = 0
                epoch = read.epoch[tp]
                offset = message.offset
                committed = self._committed_offset[tp]
                acked_index = self._acked_index[tp]
                if epoch != fetched_at.get(tp, 0):
                    if not accounted(offset, committed, acked_index):  # fetched before a seek: it is due again
                        owed.put_aside(tp, offset)
                    continue
                back = owed.due(tp, offset, committed, acked_index)
                if back is not None:  # the seek went past messages put aside: fetch them for real
                    if not await _seek_back(self, tp, back):
                        owed.pop(tp, None)
                    continue
                if accounted(offset, committed, acked_index):
                    continue  # committed or processed already
                after_seek = seen_epoch.get(tp) != epoch
                previous = read[tp]
                if previous is not None and not after_seek and offset <= previous:
                    owed.put_aside(tp, offset)  # a repeat in one sequence: a seek this loop did not see
                    continue
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                delivered.add(message)
                await self.wait_first(callback(message), self.suspend_flow.wait())
                if read.epoch[tp] == epoch:
                    read.advance(tp, offset)
                    seen_epoch[tp] = epoch
            unset_flag(flag_consumer_fetching)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)


_original_init = faust_consumer.Consumer.__init__


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    self._read_offset = ReadOffsets(self._read_offset)


def unpositioned(committed: dict[Any, int | None]) -> list[Any]:
    """Partitions ``seek_to_committed`` left where they were (aiokafka seeks only offsets > 0)."""
    return [tp for tp, offset in committed.items() if not offset]


async def _perform_seek(self: Any) -> None:
    """Faust's ``perform_seek``, which also positions partitions that have nothing committed and
    gives each of them its start as the committed offset (commits need one: defect 8)."""
    committed = await self.seek_to_committed()
    fresh = unpositioned(committed)
    if fresh:  # the consumer thread's calls (Faust's consumer itself has no seek_to_beginning)
        # the partition's first offset, asked of the broker: the consumer's position could already
        # be past a record fetched since, and committing from there would skip it
        firsts = await self._thread.earliest_offsets(*fresh)
        await self._thread.seek_to_beginning(*fresh)
        for tp in fresh:
            committed[tp] = firsts[tp]
    self._read_offset.update(committed)  # every partition has an offset now
    self._committed_offset.update({faust_consumer.ensure_TP(tp): offset for tp, offset in committed.items()})


def _producer_settings_extra(self: Any) -> dict[str, Any]:
    """Every producer of the worker is idempotent, in a transaction or not.

    Faust asks for ``enable_idempotence`` only inside transactions. Without it, a request whose
    acknowledgement is lost (a broker restarting mid-request) is retried by aiokafka and the broker
    appends the batch twice: an event id twice on ``R.held`` or a cleared topic. With it the broker
    drops the retried batch by its producer id and sequence number (idempotence needs acks=all).
    """
    return {"acks": "all", "enable_idempotence": True}


_original_ack = faust_consumer.Consumer.ack


def stale(flow_active: bool, generation: int | None, current: int | None) -> bool:
    """Whether Faust's streams skip a message unprocessed: flow stopped, or fetched in an earlier
    generation of the group (``Stream.__aiter__``)."""
    return not flow_active or (generation is not None and generation != current)


def current(app: Any, events: Any) -> bool:
    """Whether every event of a batch is still of the group's current generation (none would be
    skipped by :func:`stale`): the worker still owns what it is processing."""
    active, generation = app.flow_control.is_active(), app.consumer_generation_id
    return not any(stale(active, event.message.generation_id, generation) for event in events)


def _ack(self: Any, message: Any) -> bool:
    """Faust's ``Consumer.ack``, refusing the acknowledgement of a message its streams skipped.

    A stream skips a message fetched before a rebalance (or while flow is stopped) and then
    acknowledges it as if processed; the fetch after the rebalance then takes it for done and it is
    never processed (defect 9). The message is forgotten instead, so the fetch delivers it again.
    An agent finishing a message just then is refused too: it is processed twice, which every agent
    here tolerates.
    """
    app = self.app
    if stale(app.flow_control.is_active(), message.generation_id, app.consumer_generation_id):
        message.acked = True  # Faust forgets it (and stops waiting for it when it empties streams)
        self._unacked_messages.discard(message)
        return False
    return _original_ack(self, message)


_original_commit = faust_consumer.Consumer.commit


async def _commit(self: Any, *args: Any, **kwargs: Any) -> bool:
    if getattr(self, "_residency_commits_stopped", False):
        return False
    _watch_tails(self)
    return await _original_commit(self, *args, **kwargs)


def stop_commits(consumer: Any) -> None:
    """Commit nothing more: an agent failed and its messages were acknowledged unprocessed."""
    consumer._residency_commits_stopped = True


_original_resume = FlowControlEvent.resume


def _resume(self: Any) -> None:
    """mode's ``FlowControlEvent.resume``, which empties the agents' queues only when flow was
    suspended: what they hold while flow is active was delivered for the current generation, and
    the fetch position is past it (defect 11)."""
    if not self.is_active():
        _original_resume(self)


# The Faust agents' consumer (R.provenance, approvals, held, changelogs) asks the broker to wait for
# this much data, or this long, before it answers a fetch. With Kafka's default (answer as soon as one
# byte is there) a fetch went out for each provenance record the screen stage wrote, and building,
# sending and answering those cost the worker and the broker more than the records did: the screen
# stage moved 2,778-3,047 events/s with these against 2,379-2,613 without, interleaved, with CPU per
# event of the worker 261-288 µs against 282-309 (docs/benchmarks.md, session 11). Nothing on the
# data path waits for these fetches: cleared records are sent by the screen stage's own consumer.
AGENT_FETCH_MIN_BYTES = 64 * 1024
AGENT_FETCH_MAX_WAIT_MS = 100

_original_create_worker_consumer = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer


def _create_worker_consumer(self: Any, transport: Any) -> Any:
    """Faust's agents' consumer, fetching at least ``AGENT_FETCH_MIN_BYTES`` or every
    ``AGENT_FETCH_MAX_WAIT_MS`` (Faust passes neither; aiokafka hands both to its fetcher at start)."""
    consumer = _original_create_worker_consumer(self, transport)
    consumer._fetch_min_bytes = AGENT_FETCH_MIN_BYTES
    consumer._fetch_max_wait_ms = AGENT_FETCH_MAX_WAIT_MS
    return consumer


def install() -> None:
    """Patch Faust's consumer and producer (idempotent); call before the app's clients are created."""
    faust_aiokafka.Producer._settings_extra = _producer_settings_extra
    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer
    cls = faust_consumer.Consumer
    if getattr(cls, "_residency_fixed", False):
        return
    cls.__init__ = _init
    cls.perform_seek = _perform_seek
    cls.commit = _commit
    cls.ack = _ack
    cls._new_offset = _new_offset
    cls._add_gap = _add_gap
    cls._drain_messages = _drain_messages
    FlowControlEvent.resume = _resume
    cls._residency_fixed = True
