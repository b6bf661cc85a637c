"""pipeline.heap: the worker's collector settings, and the C heap's free pages given back."""

from __future__ import annotations

import gc
import os
import platform

from pipeline import heap


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_trim_gives_freed_memory_in_the_middle_of_the_heap_back() -> None:
    assert platform.libc_ver()[0] == "glibc"  # this project's images and CI; elsewhere trim() is a no-op
    # 4 KB objects come from malloc (not Python's small-object allocator); every 16th stays alive,
    # so the freed ones sit between live chunks, where free() alone keeps them resident
    blocks = [os.urandom(4096) for _ in range(24_000)]
    keep = blocks[::16]
    del blocks
    gc.collect()
    before = _rss_mb()
    assert heap.trim()
    after = _rss_mb()
    assert before - after > 40, (before, after)  # ~88 of the ~94 MB freed
    del keep  # alive until here, between the freed blocks


def test_the_youngest_generation_is_collected_less_often() -> None:
    saved = gc.get_threshold()
    try:
        heap.tune()
        assert gc.get_threshold() == heap.THRESHOLDS
    finally:
        gc.set_threshold(*saved)
