"""The worker's garbage collector: no full collection walks the objects that live as long as the process.

Measured in ``residency bench`` (docs/benchmarks.md, session 4): with CPython's defaults a worker ran
a full (generation 2) collection every few seconds, each walking ~110,000 long-lived objects (the
policy's compiled plans, detection tables, Faust's and aiokafka's state) for 100-170 ms on the
2-core box, during which no record moves: it was the largest single cause of the ingress-to-cleared
p99. Once the worker has started, those objects are moved to the permanent generation
(:func:`gc.freeze`), so full collections only walk what the hot path allocated since; and the
youngest generation is collected every 20,000 allocations instead of every 700, because a screen
batch allocates that many short-lived objects that reference counting frees anyway.
"""

from __future__ import annotations

import gc

THRESHOLDS = (20_000, 20, 20)


def tune() -> None:
    """At process start: collect the youngest generation less often."""
    gc.set_threshold(*THRESHOLDS)


def freeze() -> None:
    """Once started: free what start-up left behind, then exempt the rest from every collection."""
    gc.collect()
    gc.freeze()
