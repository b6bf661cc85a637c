"""Effects exactly once on top of at-least-once: intent before send, read-back after a crash.

The screen stage commits a batch's offsets only after its outputs are acknowledged, so a crash makes
the next owner process again the records after the last commit. Their outcome records may already be
on the broker; sending them again would put an event id twice on a cleared topic. Before a batch
sends anything, each source partition it reads must be covered by an *intent* in
``R.screen.intents`` (compacted, keyed by source partition), acknowledged: the first offset of the
oldest batch not yet committed, and for every destination partition a high watermark seen before any
of the covered batches sent to it. An intent stays valid for later batches (a recovery then reads a
little more); a new one is written when a batch sends to a partition the last one does not name, and
at least every ``INTENT_REFRESH_S`` seconds, so most batches cost no extra round trip.

After a restart or a rebalance, before the first batch from a source partition, the new owner reads
the partition's last intent and every destination partition from the recorded watermark to its end:
each event id found there was already emitted, with its destination coordinates. Those events are
not sent again; their provenance is completed with the coordinates found. The recovered window stays
part of the new owner's intents until the committed offset passes it, so a second crash before the
next commit still finds the first owner's outputs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger(__name__)
TP = tuple[str, int]
INTENT_REFRESH_S = 10.0  # a new intent at least this often per source partition (bounds recovery reads)
SOURCE_HEADER = "residency-source"  # "topic:partition:offset" of the ingress record, on every output


@dataclass(frozen=True, slots=True)
class Emitted:
    topic: str
    partition: int
    offset: int


@dataclass
class Window:
    """Batches of one source partition not yet known to be committed."""

    first: int
    last: int
    destinations: dict[TP, int]


@dataclass
class Recovered:
    """What a source partition's previous owner already emitted for its last uncommitted batch."""

    first_offset: int = -1
    emitted: dict[tuple[str, str], Emitted] = field(default_factory=dict)  # (event id, topic) -> where

    def lookup(self, offset: int, event_id: str, topic: str) -> Emitted | None:
        """Where ``event_id`` went on ``topic`` (an event has one record per destination topic)."""
        return self.emitted.get((event_id, topic)) if offset >= self.first_offset >= 0 else None


def intent_key(topic: str, partition: int) -> bytes:
    return f"{topic}:{partition}".encode()


class EffectLog:
    """One per worker; shared by the agents that emit outcome records."""

    def __init__(self, bootstrap: str, intents_topic: str) -> None:
        self.bootstrap = bootstrap
        self.intents_topic = intents_topic
        self._reader: AIOKafkaConsumer | None = None  # reads intents and destinations back (recovery)
        self._offsets: AIOKafkaConsumer | None = None  # asks for watermarks; never assigned anything
        self._recovered: dict[TP, Recovered] = {}
        self._done: dict[TP, int] = {}  # highest offset processed per source partition, this ownership
        self._windows: dict[TP, list[Window]] = {}  # uncommitted batches per source partition
        self._written: dict[TP, tuple[int, dict[TP, int], float]] = {}  # last intent: first, destinations, when
        self.refresh_s = INTENT_REFRESH_S
        self._sent: dict[TP, int] = {}  # per destination partition: one past the last offset acked to us
        self._lock = asyncio.Lock()

    async def _consumer(self) -> AIOKafkaConsumer:
        if self._reader is None:
            self._reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                            auto_offset_reset="earliest", isolation_level="read_committed")
            await self._reader.start()
        return self._reader

    async def _offsets_client(self) -> AIOKafkaConsumer:
        """A consumer for watermarks alone. The broker answers one request per connection at a
        time, and a consumer with partitions assigned keeps a fetch waiting there (up to 500 ms
        once it has read to the end): on the reader, each watermark request queued behind one, and
        the first batches' intents took 1.0-1.5 s (docs/benchmarks.md, session 19)."""
        if self._offsets is None:
            self._offsets = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                             isolation_level="read_committed")
            await self._offsets.start()
        return self._offsets

    async def stop(self) -> None:
        for consumer in (self._reader, self._offsets):
            if consumer is not None:
                await consumer.stop()
        self._reader = self._offsets = None

    def forget(self) -> None:
        """After a rebalance, recover again: another worker may have owned a partition meanwhile."""
        self._recovered.clear()
        self._done.clear()
        self._windows.clear()
        self._written.clear()
        self._sent.clear()

    def fresh(self, records: list[Any]) -> list[Any]:
        """``records`` less any this process already processed (a redelivery without a rebalance,
        or the same message twice in one batch): their outputs are on the broker already."""
        out, seen = [], set()
        for record in records:
            tp = (record.topic, record.partition)
            if record.offset <= self._done.get(tp, -1) or (tp, record.offset) in seen:
                continue
            seen.add((tp, record.offset))
            out.append(record)
        if len(out) < len(records):
            log.info("skipped %d records delivered again", len(records) - len(out))
        return out

    def processed(self, records: list[Any]) -> None:
        for record in records:
            tp = (record.topic, record.partition)
            self._done[tp] = max(self._done.get(tp, -1), record.offset)

    def acked(self, metas: Iterable[Any]) -> None:
        """Note where the broker put records this worker sent (``RecordMetadata``)."""
        sent = self._sent
        for meta in metas:
            tp = (meta.topic, meta.partition)
            if meta.offset >= sent.get(tp, 0):
                sent[tp] = meta.offset + 1

    async def highwaters(self, tps: Iterable[TP]) -> dict[TP, int]:
        """A watermark per destination partition at or below any offset a later send can get.

        One past the last offset acknowledged to this worker is one (the log only grows), so the
        broker is asked only about partitions this worker has not sent to since the last rebalance:
        asking it cost 100-200 ms on a loaded broker, and every intent refresh paid it."""
        tps = list(tps)
        marks = {tp: self._sent[tp] for tp in tps if tp in self._sent}
        unknown = [TopicPartition(t, p) for t, p in tps if (t, p) not in marks]
        if unknown:
            consumer = await self._offsets_client()
            await _know_topics(consumer, {tp.topic for tp in unknown})
            ends = await consumer.end_offsets(unknown)
            marks.update({(tp.topic, tp.partition): offset for tp, offset in ends.items()})
        return marks

    async def recovered(self, source: TP) -> Recovered:
        """The already-emitted events of ``source``'s last intent (read once per ownership)."""
        async with self._lock:
            if source not in self._recovered:
                self._recovered[source] = await self._recover(source)
            return self._recovered[source]

    async def _recover(self, source: TP) -> Recovered:
        intent = await self._last_intent(source)
        if intent is None:
            return Recovered()
        consumer = await self._consumer()
        emitted: dict[tuple[str, str], Emitted] = {}
        last = -1
        prefix = f"{source[0]}:{source[1]}:".encode()
        for topic, partition, start in intent["destinations"]:
            tp = TopicPartition(topic, partition)
            for msg in await _read_from(consumer, tp, start):
                headers = dict(msg.headers or ())
                origin, event_id = headers.get(SOURCE_HEADER, b""), headers.get("event-id")
                if event_id is None or not origin.startswith(prefix):
                    continue
                emitted.setdefault((event_id.decode(), topic), Emitted(topic, partition, msg.offset))
                last = max(last, int(origin[len(prefix):]))
        destinations = {(t, p): hw for t, p, hw in intent["destinations"]}
        if last >= 0:  # keep covering what the previous owner emitted until it is committed
            self._windows[source] = [Window(intent["first_offset"], last, destinations)]
        log.info("recovered %d emitted events of %s[%d] from offset %d",
                 len(emitted), source[0], source[1], intent["first_offset"])
        return Recovered(intent["first_offset"], emitted)

    async def _last_intent(self, source: TP) -> dict[str, Any] | None:
        consumer = await self._consumer()
        key = intent_key(*source)
        last = None
        await _know_topics(consumer, [self.intents_topic])
        partitions = consumer.partitions_for_topic(self.intents_topic) or {0}
        for partition in sorted(partitions):
            for msg in await _read_from(consumer, TopicPartition(self.intents_topic, partition), 0):
                if msg.key == key:
                    last = msg.value
        return orjson.loads(last) if last else None

    def covered(self, source: TP, first: int, last: int, committed: int, destinations: Iterable[TP]) -> bool:
        """Whether the last intent written for ``source`` still covers a batch ``[first, last]`` sending
        to ``destinations``; if so the batch joins its window and needs no intent of its own.

        An older intent is still right, only wider: a recovery reads the destinations from lower
        watermarks and finds more events, and only events at or after its first offset count. It is
        replaced when a batch sends to a partition it does not name, or after ``refresh_s`` (which
        bounds what a recovery reads).
        """
        written = self._written.get(source)
        if written is None:
            return False
        first_written, marks, at = written
        if first_written > first or time.monotonic() - at > self.refresh_s or not set(destinations) <= marks.keys():
            return False
        windows = [w for w in self._windows.get(source, []) if w.last >= committed]
        windows.append(Window(first, last, dict(marks)))
        self._windows[source] = windows
        return True

    def intent(self, source: TP, first: int, last: int, committed: int, highwaters: dict[TP, int]) -> tuple[bytes, bytes]:
        """The (key, value) of ``source``'s intent once the batch ``[first, last]`` is added to its
        window; ``committed`` is the source's committed offset (windows wholly below it are done)."""
        windows = [w for w in self._windows.get(source, []) if w.last >= committed]
        windows.append(Window(first, last, highwaters))
        self._windows[source] = windows
        destinations: dict[TP, int] = {}
        for window in windows:
            for tp, hw in window.destinations.items():
                destinations[tp] = min(hw, destinations.get(tp, hw))
        value = {"source": list(source), "first_offset": min(w.first for w in windows),
                 "destinations": [[t, p, hw] for (t, p), hw in sorted(destinations.items())]}
        self._written[source] = (value["first_offset"], destinations, time.monotonic())
        return intent_key(*source), orjson.dumps(value)


async def _know_topics(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> None:
    """Have ``consumer``'s metadata cover ``topics`` in one update. Asked for partitions of topics it
    does not know, aiokafka's ``end_offsets`` learns one topic per attempt, with its retry backoff
    (100 ms) between attempts."""
    client = consumer._client  # noqa: SLF001 - aiokafka has no public call to track topics
    missing = [topic for topic in topics if not client.cluster.partitions_for_topic(topic)]
    if missing:
        await asyncio.gather(*(client.add_topic(topic) for topic in missing))  # one metadata request


async def _read_from(consumer: AIOKafkaConsumer, tp: TopicPartition, start: int) -> list[Any]:
    """Records of ``tp`` from offset ``start`` to its current end; then the partition is paused, so
    that the reader does not keep fetching it."""
    end = (await consumer.end_offsets([tp]))[tp]
    if end <= start:
        return []
    consumer.assign([tp])
    try:
        consumer.seek(tp, start)
        records = []
        while await consumer.position(tp) < end:
            records.extend((await consumer.getmany(tp, timeout_ms=1000)).get(tp, []))
        return records
    finally:
        consumer.pause(tp)
