"""Batched sends through the app's producer, awaited before a batch is acknowledged.

Faust commits an offset only after the events up to it are acked; our agents ack a batch only after
every send below has been acknowledged by the broker, so at-least-once holds on the fast path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pipeline.outputs import Output, sealed


async def send_all(producer: Any, outputs: Sequence[Output],
                   partitions: Sequence[int | None] | None = None) -> list[Any]:
    """Send every output, attested where it has a seal; return each one's ``RecordMetadata``
    (topic, partition, offset)."""
    outputs = sealed(outputs)
    futures = []
    for i, out in enumerate(outputs):
        partition = partitions[i] if partitions is not None else None
        futures.append(await producer.send(out.topic, out.key, out.value, partition, None, out.headers))
    return list(await asyncio.gather(*futures))
