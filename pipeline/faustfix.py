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
seek starts a new sequence: :class:`ReadOffsets` counts seeks per partition); holes are recorded
only inside one sequence and never include the current message; messages fetched before a seek are
left to the seek's own fetch; a message is dropped only when it is below the committed offset or
already acknowledged; and a commit needs the acknowledged run to start exactly at the committed
offset. Agents downstream are idempotent, so a message delivered twice costs time, never
correctness. The pure parts are functions here and tested in tests/unit/test_faustfix.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from faust.transport import consumer as faust_consumer
from faust.utils.functional import consecutive_numbers

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


def hole(committed: int | None, previous: int | None, offset: int, after_seek: bool) -> tuple[int, int] | None:
    """Offsets ``[start, end)`` the broker holds no record for, before the message at ``offset``.

    ``previous``: the read offset; the last message of this fetch sequence, or, right after a seek,
    the offset the seek moved to (the next to read). Never includes ``offset``, never anything below
    ``committed`` (the next offset to commit from).
    """
    if previous is None:
        return None
    start = previous if after_seek else previous + 1
    if committed is not None:
        start = max(start, committed)
    return (start, offset) if start < offset else None


def new_offset(committed: int | None, acked: list[int]) -> tuple[int | None, int]:
    """The offset to commit (or ``None``) and how many leading entries of sorted ``acked`` it covers.

    ``acked`` must already hold the gap offsets up to its maximum (as Faust merges them). The run
    must start exactly at ``committed`` when there is one: anything else means a message at the
    head is still in flight.
    """
    if not acked:
        return None, 0
    if committed is not None and acked[0] != committed:
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
    acks_enabled_for = self.app.topics.acks_enabled_for
    seen_epoch: dict[Any, int] = {}  # the seek epoch of each partition's last message here
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
                if epoch != fetched_at.get(tp, 0):
                    continue  # fetched before a seek: the seek fetches it again if it is still due
                offset = message.offset
                committed = self._committed_offset[tp]
                if (committed is not None and offset < committed) or offset in self._acked_index[tp]:
                    continue  # committed or processed already
                after_seek = seen_epoch.get(tp) != epoch
                previous = read[tp]
                if previous is not None and not after_seek and offset <= previous:
                    continue  # this sequence delivered it already
                if acks_enabled_for(message.topic):
                    gap = hole(committed, previous, offset, after_seek)
                    if gap is not None:
                        await self._add_gap(tp, *gap)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
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


def install() -> None:
    """Patch Faust's consumer (idempotent); call before the app's consumer is created."""
    cls = faust_consumer.Consumer
    if getattr(cls, "_residency_fixed", False):
        return
    cls.__init__ = _init
    cls._new_offset = _new_offset
    cls._add_gap = _add_gap
    cls._drain_messages = _drain_messages
    cls._residency_fixed = True
