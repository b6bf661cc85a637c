"""How long the worker's event loop stays blocked: a short sleep that wakes late measures it.

Everything in a worker (the screen stage, the Faust agents, Kafka I/O, the web server) shares one
event loop, so any step that holds it delays every record in flight (one cause of ingress-to-cleared
latency spikes; a busy broker or box is another). ``residency_event_loop_lag_seconds`` shows them to operators and to
``residency bench`` (docs/operations.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

INTERVAL_S = 0.1


async def watch(histogram: Any, interval: float = INTERVAL_S) -> None:
    """Observe, forever, how much later than ``interval`` a sleep of ``interval`` wakes."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(interval)
        histogram.observe(max(0.0, loop.time() - started - interval))
