"""Produce a generated mix and collect where every event ended: shared by demo, tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

import ahocorasick
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from pipeline.generator import GeneratedEvent
from pipeline.topics import RegionTopics
from schemas.policy import Policy

Progress = Callable[[int, int], None]


async def produce(bootstrap: str, region: str, events: Iterable[GeneratedEvent],
                  progress: Progress | None = None, compression: str | None = None) -> int:
    """Send every event to its ``R.raw.D`` topic (in batches compressed with ``compression``, if
    given) and wait for all acks."""
    names = RegionTopics(region)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_batch_size=256 * 1024, enable_idempotence=True, compression_type=compression)
    await producer.start()
    sent = 0
    try:
        pending = []
        for event in events:
            pending.append(await producer.send(names.raw(event.dataset), event.value, key=event.key,
                                               headers=event.headers))
            sent += 1
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                pending.clear()
                if progress:
                    progress(sent, 0)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    if progress:
        progress(sent, 0)
    return sent


@dataclass
class Outcomes:
    """Where each event id was seen; ``copies`` counts records per event id per outcome topic."""

    outcome: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    copies: Counter = field(default_factory=Counter)
    cleared_bytes: list[bytes] = field(default_factory=list)
    samples: dict[str, bytes] = field(default_factory=dict)

    def of(self, event_id: str) -> set[str]:
        return self.outcome.get(event_id, set())

    def counts(self) -> Counter:
        return Counter(next(iter(v)) if len(v) == 1 else "+".join(sorted(v)) for v in self.outcome.values())


def outcome_topics(policy: Policy) -> dict[str, str]:
    names = RegionTopics(policy.region)
    topics = {names.held: "held", names.deadletter: "deadletter"}
    for dataset in policy.datasets:
        topics[names.cleared(dataset)] = "cleared"
        topics[names.rejected(dataset)] = "rejected"
    return topics


async def collect(bootstrap: str, policy: Policy, expected_ids: set[str], timeout_s: float,
                  progress: Progress | None = None) -> Outcomes:
    """Read every outcome topic from the beginning until each expected id is seen, or the deadline."""
    topics = outcome_topics(policy)
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None, isolation_level="read_committed")
    await consumer.start()
    found = Outcomes()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not expected_ids <= found.outcome.keys():
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batches.values():
                for msg in records:
                    _note(found, topics[msg.topic], msg)
            if progress:
                progress(len(expected_ids & found.outcome.keys()), len(expected_ids))
    finally:
        await consumer.stop()
    return found


def _note(found: Outcomes, outcome: str, msg: object) -> None:
    headers = dict(msg.headers or ())
    event_id = headers.get("event-id", b"").decode() or (msg.key or b"").decode(errors="replace")
    found.outcome[event_id].add(outcome)
    found.copies[(event_id, outcome)] += 1
    if outcome == "cleared":
        found.cleared_bytes.append((msg.key or b"") + b"\x00" + msg.value + b"\x00" +
                                   b"\x00".join(k.encode() + b"=" + v for k, v in msg.headers or ()))
        found.samples.setdefault(msg.topic, msg.value)


def leaked(outcomes: Outcomes, events: Iterable[GeneratedEvent]) -> list[tuple[str, str]]:
    """(event id, kind of secret) for every raw secret found anywhere in a cleared record.

    A secret counts as leaked when its raw text occurs in any cleared key, value or header, or, for
    one of 12 digits or more, when its digits occur in the digits of the cleared bytes (a card number
    re-spaced is still a card number). Every secret is looked for at once (Aho-Corasick), so the check
    is linear in the cleared bytes: one ``in`` per secret was quadratic, and a 20,000-event demo spent
    minutes here after its last outcome.
    """
    events = list(events)
    blob = b"\x01".join(outcomes.cleared_bytes)
    digits_blob = blob.translate(None, _NOT_DIGITS)
    raws = {secret.encode() for event in events for secret in event.secrets}
    found = _occurring(raws, blob)
    found_digits = _occurring({d for d in map(_digits, raws) if len(d) >= 12}, digits_blob)
    hits = []
    for event in events:
        for secret in event.secrets:
            raw = secret.encode()
            if raw in found or _digits(raw) in found_digits:
                hits.append((event.event_id, "secret"))
    return hits


_NOT_DIGITS = bytes(c for c in range(256) if not 48 <= c <= 57)


def _digits(raw: bytes) -> bytes:
    return raw.translate(None, _NOT_DIGITS)


def _occurring(needles: set[bytes], haystack: bytes) -> set[bytes]:
    """The needles that occur in ``haystack``, overlapping occurrences included."""
    needles = {n for n in needles if n}
    if not needles or not haystack:
        return set()
    automaton = ahocorasick.Automaton()
    for needle in needles:  # latin-1 maps bytes to code points one to one
        automaton.add_word(needle.decode("latin-1"), needle)
    automaton.make_automaton()
    return {needle for _, needle in automaton.iter(haystack.decode("latin-1"))}


@contextlib.asynccontextmanager
async def _committed_reader(bootstrap: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A started group-less consumer that reads committed records only."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's end offset (the offset the next record will get) of ``topic`` now."""
    async with _committed_reader(bootstrap) as consumer:
        tps = await _partitions(consumer, topic)
        return {tp.partition: end for tp, end in (await consumer.end_offsets(tps)).items()} if tps else {}


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    partitions = consumer.partitions_for_topic(topic)
    if partitions is None:
        await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public call
        partitions = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def read_topic(bootstrap: str, topic: str, until: dict[int, int] | None = None) -> list:
    """Every record on ``topic`` from the beginning to its end offsets at the time of the call, or, per
    partition, to the offsets in ``until`` (records at or past them are left out)."""
    async with _committed_reader(bootstrap) as consumer:
        tps = await _partitions(consumer, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        if until is not None:
            end = {tp: min(offset, until.get(tp.partition, 0)) for tp, offset in end.items()}
        out = []
        pending = {tp for tp in tps if end[tp] > 0}
        while pending:
            for tp, records in (await consumer.getmany(*pending, timeout_ms=500)).items():
                out.extend(r for r in records if r.offset < end[tp])
                if records and records[-1].offset >= end[tp] - 1:
                    pending.discard(tp)
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
        return out
