"""The worker's garbage collector: no full collection walks the objects that live as long as the process.

Measured in ``residency bench`` (docs/benchmarks.md, session 4): with CPython's defaults a worker ran
a full (generation 2) collection every few seconds, each walking ~110,000 long-lived objects (the
policy's compiled plans, detection tables, Faust's and aiokafka's state) for 100-170 ms on the
2-core box, during which no record moves: it was the largest single cause of the ingress-to-cleared
p99. Once the worker has started, those objects are moved to the permanent generation
(:func:`gc.freeze`), so full collections only walk what the hot path allocated since; and the
youngest generation is collected every 20,000 allocations instead of every 700, because a screen
batch allocates that many short-lived objects that reference counting frees anyway.

And every ``TRIM_INTERVAL_S`` the C heap's free pages go back to the operating system
(:func:`trim`): glibc keeps what the process freed (record buffers, RocksDB's and the codecs'
scratch) mapped, ~35-45 MB of a worker's ~110 MB C heap at 4,000 events/s, and its RSS crept up
by ~0.5 MB/s through a latency run. Trimmed every 10 s (1.4-2.6 ms each on the event loop), the
worker's process stayed at 151-191 MB instead of 200-231; every 2 s, the peak RSS of a 200,000-event
bench run with its children was 376 MB against 387 (docs/benchmarks.md, session 19).
"""

from __future__ import annotations

import ctypes
import gc

THRESHOLDS = (20_000, 20, 20)
TRIM_INTERVAL_S = 2.0


def _malloc_trim():  # noqa: ANN202 - a ctypes function, or None where the C library has none
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc
    except (AttributeError, OSError):  # musl, macOS: nothing to call, and nothing done
        return None


_MALLOC_TRIM = _malloc_trim()


def tune() -> None:
    """At process start: collect the youngest generation less often."""
    gc.set_threshold(*THRESHOLDS)


def freeze() -> None:
    """Once started: free what start-up left behind, then exempt the rest from every collection."""
    gc.collect()
    gc.freeze()


def trim() -> bool:
    """Return the C heap's free pages to the operating system; False where the C library cannot."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True
