"""Folding provenance fragments from every stage into one record per event id.

Pure functions; the record agent calls them. Fragments arrive at least once, so folding the same
fragment twice changes nothing.
"""

from __future__ import annotations

from typing import Any

import orjson

TERMINAL = {"cleared", "rejected", "deadletter", "released", "expired"}
# Decide-stage notes that change no outcome: a refused decision, an approval short of the quorum.
NOTES = {"refused", "approval_recorded"}


def _identity(fragment: dict[str, Any]) -> tuple[Any, ...]:
    dest = fragment.get("destination") or {}
    return (fragment.get("stage"), fragment.get("decision"), dest.get("topic"), dest.get("offset"),
            (fragment.get("source") or {}).get("offset"), fragment.get("decision_id"))


def fold(existing: bytes | None, fragment: dict[str, Any]) -> bytes | None:
    """The provenance record after ``fragment``, or ``None`` when it adds nothing new."""
    record: dict[str, Any] = orjson.loads(existing) if existing else {
        "event_id": fragment["event_id"],
        "stages": [],
    }
    ident = _identity(fragment)
    if any(_identity(stage) == ident for stage in record["stages"]):
        return None
    record["stages"].append(fragment)
    for field in ("dataset", "region", "source", "raw_sha256"):
        if field in fragment and field not in record:
            record[field] = fragment[field]
    decision = fragment.get("decision")
    if decision and decision not in NOTES and not (record.get("terminal") and decision not in TERMINAL):
        record["outcome"] = decision
        record["terminal"] = decision in TERMINAL
    return orjson.dumps(record)


def fragments_of(value: bytes) -> list[dict[str, Any]]:
    """The fragments in one ``R.provenance`` record: the screen stage sends a list per partition and
    batch, the decide agent one fragment. Raises ``ValueError`` on anything else."""
    decoded = orjson.loads(value)
    fragments = decoded if isinstance(decoded, list) else [decoded]
    for fragment in fragments:
        if not isinstance(fragment, dict) or not isinstance(fragment.get("event_id"), str):
            raise ValueError("not a provenance fragment")
    return fragments
