"""The holds still awaiting a decision on this worker, as the expiry timer needs them.

The timer used to decode every stored hold every pass (10-20 µs each, so a worker with 100,000 open
holds spent 1-2 s of its event loop every 5 s on it). This index keeps, per open hold, only when it
was held and its dataset; the decide agent adds a hold when it takes one and drops it when the hold
reaches a final status. The store stays the authority: a hold the index finds due is read back and
checked before it is expired, and the index is rebuilt from the store after every rebalance (the
partitions and their recovered holds change) and every ``REBUILD_EVERY`` passes besides, so a
missed update cannot last.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

REBUILD_EVERY = 60  # passes between two rebuilds from the store (5 minutes at the 5 s default)


def entry(state: dict[str, Any]) -> tuple[int, str]:
    """What the index keeps of a hold's state: when it was held, and its dataset."""
    return state["held_at_ms"], state.get("dataset") or ""


class OpenHolds:
    def __init__(self) -> None:
        self.entries: dict[bytes, tuple[int, str]] = {}  # key -> (held_at_ms, dataset)
        self.valid = False  # built from the store since the last rebalance
        self.generation = 0  # bumped by every invalidation; a rebuild that saw one is not valid
        self.passes = 0
        self._journal: list[tuple[bytes, tuple[int, str] | None]] | None = None  # changes during a rebuild

    def add(self, key: bytes, state: dict[str, Any]) -> None:
        kept = self.entries[key] = entry(state)
        if self._journal is not None:
            self._journal.append((key, kept))

    def discard(self, key: bytes) -> None:
        self.entries.pop(key, None)
        if self._journal is not None:
            self._journal.append((key, None))

    def invalidate(self) -> None:
        """The worker's partitions changed: what the index holds may no longer be ours."""
        self.valid = False
        self.generation += 1

    def due_for_rebuild(self) -> bool:
        """Count a pass; True when this one must rebuild from the store."""
        self.passes += 1
        return not self.valid or self.passes % REBUILD_EVERY == 0

    def rebuilding(self) -> int:
        """A scan of the store starts; returns the generation to hand to :meth:`rebuilt`. Holds taken
        and finished while it runs are replayed onto what it finds."""
        self._journal = []
        return self.generation

    def rebuilt(self, entries: dict[bytes, tuple[int, str]], generation: int) -> None:
        """The scan that started at ``generation`` found ``entries`` (open holds by key)."""
        for key, kept in self._journal or ():
            if kept is None:
                entries.pop(key, None)
            else:
                entries[key] = kept
        self._journal = None
        self.entries = entries
        self.valid = generation == self.generation

    def due(self, now_ms: int, ttl_s: Callable[[str], float | None]) -> list[bytes]:
        """Keys of the holds past their dataset's TTL (``ttl_s`` None: the dataset never expires)."""
        stale = []
        for key, (held_at_ms, dataset) in self.entries.items():
            ttl = ttl_s(dataset)
            if ttl is not None and now_ms - held_at_ms >= ttl * 1000:
                stale.append(key)
        return stale

    def oldest(self) -> tuple[int, str] | None:
        """``(held_at_ms, dataset)`` of the oldest open hold, or None."""
        return min(self.entries.values(), default=None)

