"""Consumer lag per owned source partition, for ``residency_consumer_lag``."""

from __future__ import annotations

from typing import Any


async def source_lags(app: Any, source_topics: set[str]) -> dict[tuple[str, int], int]:
    """High watermark minus committed offset for every owned partition of ``source_topics``."""
    consumer = app.consumer
    tps = [tp for tp in consumer.assignment() if tp.topic in source_topics]
    if not tps:
        return {}
    highwaters = await consumer.highwaters(*tps)
    lags = {}
    for tp in tps:
        # Faust keeps the committed offsets it wrote; there is no public accessor.
        committed = consumer._committed_offset.get(tp) or 0  # noqa: SLF001
        lags[(tp.topic, tp.partition)] = max(0, highwaters.get(tp, 0) - committed)
    return lags
