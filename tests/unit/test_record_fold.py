"""The record agent's fold into a real RocksDB-backed provenance table (agents.record.fold_batch)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import faust
import orjson

from agents.record import fold_batch
from pipeline.provenance import fold
from pipeline.tables import provenance_table, read_store


def _fragment(event_id: str, stage: str, decision: str, offset: int) -> dict:
    return {"event_id": event_id, "stage": stage, "decision": decision, "dataset": "payments", "region": "eu",
            "source": {"topic": "eu.raw.payments", "partition": 0, "offset": offset},
            "destination": {"topic": f"eu.{decision}.payments", "partition": 0, "offset": offset}}


def _event(partition: int, offset: int, fragments: list[dict] | dict | bytes) -> SimpleNamespace:
    """What fold_batch reads of a Faust event: its message's partition, offset and value."""
    value = fragments if isinstance(fragments, bytes) else orjson.dumps(fragments)
    return SimpleNamespace(message=SimpleNamespace(partition=partition, offset=offset, value=value))


def test_batches_fold_like_one_fragment_at_a_time(tmp_path: Path) -> None:
    app = faust.App("fold-test", store="rocksdb://", datadir=str(tmp_path))
    table = provenance_table(app, 3)
    batches = [
        [_event(0, 0, [_fragment("e1", "screen", "held", 1), _fragment("e2", "screen", "cleared", 2)]),
         _event(1, 0, [_fragment("e3", "screen", "cleared", 3)])],
        # a later batch: e1 released, e4 screened and decided in the same batch, a fragment again
        [_event(0, 1, _fragment("e1", "decide", "released", 9)),
         _event(2, 0, [_fragment("e4", "screen", "held", 4)]),
         _event(2, 1, _fragment("e4", "decide", "rejected", 10)),
         _event(1, 1, [_fragment("e3", "screen", "cleared", 3)]),
         _event(1, 2, b"not json")],
    ]
    expected: dict[tuple[int, bytes], bytes] = {}
    chained_all = []
    for events in batches:
        chained, changelog = fold_batch(table, events)
        chained_all += chained
        for event in events:
            try:
                fragments = orjson.loads(event.message.value)
            except orjson.JSONDecodeError:
                continue
            for fragment in fragments if isinstance(fragments, list) else [fragments]:
                key = (event.message.partition, fragment["event_id"].encode())
                folded = fold(expected.get(key), fragment)
                expected[key] = folded if folded is not None else expected[key]
        # every key the batch touched is in its changelog with the value now in the store
        assert {(p, k): v for p, k, v in changelog} == {key: expected[key] for key in {(p, k) for p, k, _ in changelog}}
    for (partition, key), value in expected.items():
        assert read_store(table, partition, key) == value
    assert [orjson.loads(expected[(2, b"e4")])["outcome"], orjson.loads(expected[(0, b"e1")])["outcome"]] == [
        "rejected", "released"]
    assert len(orjson.loads(expected[(1, b"e3")])["stages"]) == 1  # the repeated fragment added nothing
    assert len(chained_all) == 7  # every fragment is chained, the repeat too (at least once)
