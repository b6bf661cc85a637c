"""The expiry timer's index of open holds (pipeline.approval.openholds)."""

from __future__ import annotations

from pipeline.approval.openholds import REBUILD_EVERY, OpenHolds

TTL = {"tickets": 60.0, "payments": 3600.0}


def _state(at_ms: int, dataset: str) -> dict:
    return {"held_at_ms": at_ms, "dataset": dataset, "status": "held"}


def test_due_holds_are_those_past_their_datasets_ttl() -> None:
    holds = OpenHolds()
    holds.rebuilt({}, holds.rebuilding())
    holds.add(b"t-old", _state(0, "tickets"))
    holds.add(b"t-new", _state(50_000, "tickets"))
    holds.add(b"p-old", _state(0, "payments"))
    holds.add(b"x", _state(0, "no-approval"))  # a dataset without approval rules never expires
    assert holds.due(60_000, TTL.get) == [b"t-old"]
    assert sorted(holds.due(3_600_000, TTL.get)) == [b"p-old", b"t-new", b"t-old"]
    holds.discard(b"t-old")
    assert holds.oldest() == (0, "no-approval") and len(holds.entries) == 3


def test_rebuilt_after_a_rebalance_and_every_so_many_passes() -> None:
    holds = OpenHolds()
    assert holds.due_for_rebuild()  # never built
    holds.rebuilt({b"a": (1, "tickets")}, holds.rebuilding())
    assert not holds.due_for_rebuild()
    holds.invalidate()
    assert holds.due_for_rebuild()
    holds.rebuilt({}, holds.rebuilding())
    due = [holds.due_for_rebuild() for _ in range(2 * REBUILD_EVERY)]
    assert due.count(True) == 2


def test_a_rebalance_during_a_rebuild_leaves_the_index_invalid() -> None:
    holds = OpenHolds()
    generation = holds.rebuilding()
    holds.invalidate()  # partitions moved while the store was being read
    holds.rebuilt({b"a": (1, "tickets")}, generation)
    assert not holds.valid and holds.due_for_rebuild()


def test_holds_taken_and_finished_during_a_rebuild_are_kept() -> None:
    holds = OpenHolds()
    generation = holds.rebuilding()
    # the scan read a snapshot holding "done" (still open then) and not yet "new"
    holds.add(b"new", _state(5, "tickets"))
    holds.discard(b"done")
    holds.rebuilt({b"done": (1, "tickets"), b"old": (2, "tickets")}, generation)
    assert holds.valid and holds.entries == {b"old": (2, "tickets"), b"new": (5, "tickets")}
    holds.add(b"later", _state(9, "tickets"))  # no rebuild running: no journal kept
    assert holds._journal is None
