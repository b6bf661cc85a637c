"""Appending provenance fragments to the hash-chained ``R.audit``, one writer per owned partition.

The record agent owning partition p of ``R.provenance`` is the only writer of ``R.audit[p]``. On first
use after start or a rebalance, a writer resumes from the last record of ``R.audit[p]`` (the topic is
the chain head, so a crash never forks the chain). A failed send drops the writer, so the next batch
resumes from the topic again. Checkpoints are signed, appended, and once acknowledged copied to
``R.audit.checkpoints``. See docs/audit.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.audit import ChainWriter, Signer
from pipeline.audit.entry import format_at
from pipeline.outputs import Output
from pipeline.sender import send_all

log = logging.getLogger(__name__)


async def read_last_record(bootstrap: str, topic: str, partition: int) -> bytes | None:
    """The value of the last record of ``topic[partition]``, or ``None`` when it is empty."""
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed")
    await consumer.start()
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        if end == 0:
            return None
        consumer.seek(tp, end - 1)
        last = None
        while await consumer.position(tp) < end:
            for msg in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                last = msg.value
        return last
    finally:
        await consumer.stop()


class AuditAppender:
    """Chains fragments onto ``R.audit`` and signs checkpoints. One per worker process."""

    def __init__(self, *, bootstrap: str, audit_topic: str, checkpoints_topic: str, signer: Signer,
                 producer: Callable[[], Any], every_entries: int = 1000, every_seconds: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.audit_topic = audit_topic
        self.checkpoints_topic = checkpoints_topic
        self.signer = signer
        self._producer = producer
        self.every_entries = every_entries
        self.every_seconds = every_seconds
        self._writers: dict[int, ChainWriter] = {}
        self._lock = asyncio.Lock()
        self.last_checkpoint_at: datetime | None = None
        self._started_at = datetime.now(UTC)

    def checkpoint_age_seconds(self) -> float:
        """Seconds since this worker last signed a checkpoint (since start when it has not yet)."""
        since = self.last_checkpoint_at or self._started_at
        return (datetime.now(UTC) - since).total_seconds()

    async def _writer(self, partition: int) -> ChainWriter:
        writer = self._writers.get(partition)
        if writer is None:
            last = await read_last_record(self.bootstrap, self.audit_topic, partition)
            writer = self._writers[partition] = ChainWriter.resume(self.audit_topic, partition, last)
            log.info("audit chain resumed", extra={"partition": partition, "next_seq": writer.next_seq})
        return writer

    @contextlib.contextmanager
    def _resumed_on_failure(self, entries: dict[int, list[bytes]]) -> Iterator[None]:
        """Drop the writer of every partition in ``entries`` (filled as the block goes) if the block
        fails: what they chained was never acknowledged, so the next batch resumes from the topic."""
        try:
            yield
        except BaseException:
            for partition in entries:
                self._writers.pop(partition, None)
            raise

    async def _send(self, entries: dict[int, list[bytes]], topic: str | None = None) -> None:
        """Send every partition's entries in one go (one produce request for all of them) and wait
        for the broker's acks."""
        name = topic or self.audit_topic
        outputs, partitions = [], []
        for partition, values in entries.items():
            outputs.extend(Output(name, None, v, []) for v in values)
            partitions.extend([partition] * len(values))
        await send_all(self._producer(), outputs, partitions)

    async def append(self, fragments: Iterable[tuple[int, dict]]) -> None:
        """Chain each ``(partition, fragment)`` and wait until the broker acknowledged all of them.

        The partitions' entries go out together: awaiting each partition's send before chaining the
        next made a batch spanning three partitions three round trips long."""
        by_partition: dict[int, list[dict]] = {}
        for partition, fragment in fragments:
            by_partition.setdefault(partition, []).append(fragment)
        async with self._lock:
            now = datetime.now(UTC)
            at = format_at(now)  # one timestamp text for the batch
            entries: dict[int, list[bytes]] = {}
            with self._resumed_on_failure(entries):
                for partition, bodies in by_partition.items():
                    writer = await self._writer(partition)
                    entries[partition] = []  # from here on the writer may hold entries never sent
                    entries[partition].extend(writer.append(body, at) for body in bodies)
                if entries:
                    await self._send(entries)
            await self._checkpoint_due(now, by_partition)

    async def checkpoint_idle(self) -> None:
        """Sign the heads of partitions whose last checkpoint is older than the interval."""
        async with self._lock:
            await self._checkpoint_due(datetime.now(UTC), list(self._writers))

    async def checkpoint_all(self) -> None:
        """Sign every head with entries since its last checkpoint (on shutdown: the tail stays covered)."""
        async with self._lock:
            await self._checkpoint_due(datetime.now(UTC), list(self._writers), force=True)

    async def _checkpoint_due(self, now: datetime, partitions: Iterable[int], force: bool = False) -> None:
        """Sign the due heads, append the checkpoints (one send for every partition), then, once they
        are acknowledged, copy them to ``R.audit.checkpoints`` (a copy never precedes its entry)."""
        signed: dict[int, list[bytes]] = {}
        with self._resumed_on_failure(signed):
            for partition in partitions:
                writer = self._writers.get(partition)
                if writer is None or writer.entries_since_checkpoint == 0:
                    continue
                if not force and not writer.checkpoint_due(
                        now, every_entries=self.every_entries, every_seconds=self.every_seconds):
                    continue
                signed[partition] = [writer.checkpoint(self.signer, now)]
            if not signed:
                return
            await self._send(signed)
            await self._send(signed, self.checkpoints_topic)
        self.last_checkpoint_at = now

    async def forget(self) -> None:
        """Drop every writer (on a rebalance): the next owner resumes from the topic."""
        async with self._lock:
            self._writers.clear()
