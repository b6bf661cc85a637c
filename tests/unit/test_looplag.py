"""residency_event_loop_lag_seconds sees a blocked event loop (pipeline.looplag)."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry

from pipeline import looplag
from pipeline.metrics import Metrics


def _buckets(registry: CollectorRegistry) -> dict[float, float]:
    return {float(s.labels["le"]): s.value for m in registry.collect() if m.name == "residency_event_loop_lag_seconds"
            for s in m.samples if s.name.endswith("_bucket")}


def test_a_blocked_loop_is_observed_as_lag() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)

    async def main() -> None:
        watcher = asyncio.ensure_future(looplag.watch(metrics.event_loop_lag, interval=0.02))
        await asyncio.sleep(0.1)  # a few quiet wake-ups
        time.sleep(0.3)  # noqa: ASYNC251 - something holds the loop
        await asyncio.sleep(0.1)
        watcher.cancel()

    asyncio.run(main())
    buckets = _buckets(registry)
    total = buckets[float("inf")]
    assert total >= 3
    assert total - buckets[0.25] == 1  # the one block of 0.3 s, and only it, is over 250 ms
    assert buckets[0.5] == total
