"""The two watchdogs behind :mod:`pipeline.faustfix`: a partition Faust stopped committing is fetched again.

Faust commits a partition only up to the first offset no agent acknowledged. When the message at
that offset never reaches an agent (defects 7 and 11 in pipeline/faustfix.py: put aside around a
seek, or thrown out of an agent's queue), commits stop there for good and nothing says so. Both
watchdogs run inside Faust's commit and fetch the partition again from its committed offset once it
has looked stuck for ``STUCK_S`` seconds (an agent still holding the message gets it twice, which
every agent here tolerates):

- the **head** watchdog (:func:`stuck_head`): later offsets are acknowledged, the committed one is not;
- the **tail** watchdog (:func:`stuck_tail`): records exist past the committed offset, none is
  acknowledged, none is in flight and the fetch makes no progress (a partition's last records, with
  nothing later to reveal them).

Offsets deleted by retention before they were read are the one real hole; the refetch finds them
from the partition's first offset and counts them as a gap. The pure parts are tested in
tests/unit/test_faustfix.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger("pipeline.faustfix")  # the fixes' log, as before the watchdogs had a module


async def _seek_back(consumer: Any, tp: Any, offset: int) -> bool:
    """Seek ``tp`` back to ``offset``; ``False`` when that failed (the partition is no longer ours)."""
    log.info("fetch went past unprocessed offset %d of %s[%d]; seeking back", offset, tp.topic, tp.partition)
    try:
        # Marked first, so the records in hand are put aside; then sought in the consumer thread
        # (Faust's own ``seek`` calls aiokafka from this thread, racing the thread's fetch: a
        # KeyError in aiokafka's fetcher crashed a worker), which marks it again once done.
        consumer._read_offset[tp] = offset  # noqa: SLF001
        await consumer.seek_wait({tp: offset})
    except Exception as exc:  # noqa: BLE001 - no longer assigned: its next owner starts from the commit
        log.info("seek back on %s[%d] failed (%s); its next owner reads from the commit",
                 tp.topic, tp.partition, type(exc).__name__)
        return False
    return True


clock = time.monotonic
STUCK_S = 5.0  # a missing head of the acknowledged run this long, not in flight: fetch it again


def stuck_head(committed: int | None, acked: list[int]) -> bool:
    """Later offsets are acknowledged but not the committed one.

    Every agent here runs one instance and handles a partition in order, so a later offset
    acknowledged before the committed one means the committed one never reached the agent (put
    aside, or taken out of an agent's queue by a rebalance) unless it is being handled right now.
    """
    return committed is not None and bool(acked) and acked[0] > committed


def overdue(watched: dict[Any, tuple[Any, float]], tp: Any, mark: Any, now: float) -> bool:
    """Whether ``tp`` has shown the same ``mark`` for ``STUCK_S`` seconds (then the interval restarts).

    ``watched`` holds each partition's last mark and since when; a new mark restarts the interval.
    """
    seen, since = watched.get(tp, (None, now))
    if seen != mark:
        watched[tp] = (mark, now)
        return False
    if now - since < STUCK_S:
        return False
    watched[tp] = (mark, now)  # at most one seek per interval
    return True


def _watch_head(self: Any, tp: Any, committed: int | None, acked: list[int]) -> None:
    """Last line of defence for at-least-once: if the message at the committed offset was lost on
    its way to the agents, commits stop there for good while later messages are acknowledged.
    After ``STUCK_S`` seconds of that, seek back to the committed offset (an agent still handling
    it gets it twice, which every agent here tolerates); what was acknowledged meanwhile is skipped."""
    watched = self.__dict__.setdefault("_residency_heads", {})
    if not stuck_head(committed, acked):
        watched.pop(tp, None)
        return
    if not overdue(watched, tp, committed, clock()):
        return
    log.warning("offset %d of %s[%d] never reached an agent (%d later ones did); fetching again from it",
                committed, tp.topic, tp.partition, len(acked))
    _refetch_soon(self, tp, committed)


def _refetch_soon(self: Any, tp: Any, committed: int) -> None:
    """Fetch ``tp`` again from ``committed`` in a task (the watchdogs run inside a commit)."""
    task = asyncio.ensure_future(_refetch_head(self, tp, committed))
    self.__dict__.setdefault("_residency_tasks", set()).add(task)
    task.add_done_callback(self._residency_tasks.discard)


def stuck_tail(committed: int | None, end: int | None, acked: Any, in_flight: bool) -> bool:
    """Records exist past the committed offset, yet none is acknowledged and none is on its way.

    ``end``: the partition's high watermark; ``in_flight``: a message of the partition was delivered
    and is neither acknowledged nor dropped (queued, buffered or being handled). What is left was
    delivered once and dropped, or fetched and put aside, while the fetch position went past it:
    nothing fetches it again and, unlike :func:`stuck_head`, no later acknowledgement shows it.
    """
    return committed is not None and end is not None and committed < end and not acked and not in_flight


def in_flight(messages: Any, generation: int | None) -> set[Any]:
    """The partitions of ``messages`` (delivered ones still referenced) that an agent may yet acknowledge.

    A message of an earlier generation of the group is never acknowledged: streams skip it and
    :func:`_ack` refuses it, though a variable can still hold it after it was dropped.
    """
    return {m.tp for m in messages if not m.acked and m.generation_id == generation}


def _watch_tails(self: Any) -> None:
    """The stuck-head watchdog's counterpart for the end of a partition, run before every commit.

    A partition whose committed offset stays below its high watermark, with nothing acknowledged
    past it, nothing in flight and no fetch progress (the read offset and its seek epoch unchanged)
    for ``STUCK_S`` seconds is fetched again from the committed offset. Not during a rebalance or
    while flow is stopped: the seek that ends those fetches from the committed offsets anyway.
    """
    watched = self.__dict__.setdefault("_residency_tails", {})
    app = self.app
    if app.rebalancing or not self.flow_active or not app.flow_control.is_active():
        watched.clear()
        return
    busy = in_flight([*self.__dict__.get("_residency_delivered", ()), *self._unacked_messages],
                     app.consumer_generation_id)
    now = clock()
    for tp in self.assignment():
        if not app.topics.acks_enabled_for(tp.topic):
            continue  # changelogs and topics read without commits
        committed = self._committed_offset.get(tp)
        if not stuck_tail(committed, _highwater(self, tp), self._acked.get(tp), tp in busy):
            watched.pop(tp, None)
            continue
        if overdue(watched, tp, (committed, self._read_offset[tp], self._read_offset.epoch[tp]), now):
            log.warning("offset %d of %s[%d] and the ones after it were never acknowledged and none is in "
                        "flight; fetching again from it", committed, tp.topic, tp.partition)
            _refetch_soon(self, tp, committed)


def _highwater(consumer: Any, tp: Any) -> int | None:
    """The high watermark of the last fetch response for ``tp`` (``None`` before the first one)."""
    try:
        return consumer.highwater(tp)
    except Exception:  # noqa: BLE001 - revoked meanwhile: not ours to watch
        return None


async def _refetch_head(consumer: Any, tp: Any, committed: int) -> None:
    """Fetch the stuck head again; offsets retention deleted before they were read are a hole."""
    try:
        first = (await consumer.earliest_offsets(tp)).get(tp)
    except Exception:  # noqa: BLE001 - the seek below still helps
        first = None
    if first is not None and first > committed:
        log.warning("offsets %d-%d of %s[%d] were deleted by retention before they were read",
                    committed, first - 1, tp.topic, tp.partition)
        await consumer._add_gap(tp, committed, first)  # noqa: SLF001
        return
    await _seek_back(consumer, tp, committed)
