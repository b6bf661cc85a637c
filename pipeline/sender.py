"""Batched sends through the app's producer, awaited before a batch is acknowledged.

Faust commits an offset only after the events up to it are acked; our agents ack a batch only after
every send below has been acknowledged by the broker, so at-least-once holds on the fast path.

Outputs whose partition is known go to the broker as one record batch per partition, built here
with aiokafka's batch API (``create_batch`` / ``send_batch``): a per-record ``send`` costs ~12 µs of
CPU (a future, a metadata wait and an accumulator lookup per record), a record appended to a batch
~2.5 µs (docs/benchmarks.md, session 5). The broker gives a batch's records consecutive offsets from
its base offset, so each record's offset is the base offset plus its place in the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, NamedTuple

from pipeline.outputs import Output, sealed


class Sent(NamedTuple):
    """Where the broker put one record."""

    topic: str
    partition: int
    offset: int


async def send_all(producer: Any, outputs: Sequence[Output],
                   partitions: Sequence[int | None] | None = None) -> list[Any]:
    """Send every output, attested where it has a seal, and wait for the broker's acknowledgement of
    all of them; return where each one went (``topic``, ``partition``, ``offset``), in order."""
    outputs = sealed(outputs)
    if partitions is None or any(p is None for p in partitions):
        # the default partitioner picks (intents, approvals, decisions: a few records at a time)
        futures = [await producer.send(out.topic, out.key, out.value, None if partitions is None else partitions[i],
                                       None, out.headers)
                   for i, out in enumerate(outputs)]
        return list(await asyncio.gather(*futures))
    return await _send_batches(producer._ensure_producer(), outputs, partitions)  # noqa: SLF001 - Faust's aiokafka producer


async def _send_batches(aio: Any, outputs: Sequence[Output], partitions: Sequence[int]) -> list[Sent]:
    by_tp: dict[tuple[str, int], list[int]] = {}
    for i, out in enumerate(outputs):
        by_tp.setdefault((out.topic, partitions[i]), []).append(i)
    placed: list[tuple[int, int]] = [(0, 0)] * len(outputs)  # (batch number, offset within the batch)
    sends: list[tuple[Any, str, int]] = []  # (batch, topic, partition)
    for (topic, partition), indices in by_tp.items():
        batch = aio.create_batch()
        for i in indices:
            out = outputs[i]
            meta = batch.append(key=out.key, value=out.value, timestamp=None, headers=out.headers)
            if meta is None:  # full: it goes as it is, the record starts the next one (an empty batch
                # takes a record of any size; the broker refuses one over its limit)
                sends.append((batch, topic, partition))
                batch = aio.create_batch()
                meta = batch.append(key=out.key, value=out.value, timestamp=None, headers=out.headers)
            placed[i] = (len(sends), meta.offset)
        sends.append((batch, topic, partition))
    futures = []
    for batch, topic, partition in sends:
        batch.close()
        futures.append(await aio.send_batch(batch, topic, partition=partition))
    acked = await asyncio.gather(*futures)
    return [Sent(outputs[i].topic, partitions[i], acked[n].offset + relative) for i, (n, relative) in enumerate(placed)]
