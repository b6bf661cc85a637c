"""The held table's value for one event, and the views of it that approvers may see.

A state is a plain dict (stored as orjson bytes): the screen's held envelope (with the exact raw
bytes, which stay in-region), the status, the approvals so far, every decision id used, the refusals,
and the final outcome. Views never carry raw bytes or header values, and previews are re-scanned so no
detected value is shown even where the dataset holds (rather than masks) unexpected personal data.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import orjson

from pipeline import detection

HELD = "held"
FINAL = frozenset({"released", "rejected", "expired", "deadletter"})
MAX_REFUSALS = 100
MAX_USED = 1000
RAW_FIELDS = ("raw_value_b64", "raw_key_b64", "raw_headers")


def now_ms() -> int:
    return int(time.time() * 1000)


def new_state(envelope: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """A fresh hold from the screen's envelope on ``R.held``."""
    return {
        "event_id": envelope["event_id"],
        "dataset": envelope.get("dataset"),
        "status": HELD,
        "held_at_ms": int(envelope.get("held_at_ms") or now_ms()),
        "envelope": envelope,
        "held_source": source,
        "approvals": [],
        "used": {},
        "refusals": [],
        "outcome": None,
    }


def encode(state: dict[str, Any]) -> bytes:
    return orjson.dumps(state)


def decode(value: bytes | None) -> dict[str, Any] | None:
    return None if value is None else orjson.loads(value)


def producer_subject(state: dict[str, Any]) -> str | None:
    """The producer principal's subject from the envelope, or ``None`` when the producer is unknown."""
    producer = state["envelope"].get("producer")
    if isinstance(producer, dict):
        producer = producer.get("subject")
    return producer if isinstance(producer, str) and producer.strip() else None


def age_seconds(state: dict[str, Any], at_ms: int | None = None) -> float:
    return max(0.0, ((at_ms or now_ms()) - state["held_at_ms"]) / 1000)


def safe_preview(preview: Any, budget_ms: float = 200.0) -> Any:
    """The masked preview with every string re-scanned: detected spans become ``[type]``.

    Fails closed: when detection overruns its budget, unscanned strings are replaced whole.
    """
    budget = detection.Budget(max_seconds=budget_ms / 1000)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str):
            try:
                spans = detection.scan(node, budget)
            except Exception:  # noqa: BLE001 - budget overrun or any failure: show nothing of it
                return "[unscanned]"
            return detection.redact_spans(node, spans) if spans else node
        return node

    return walk(preview)


def summary(state: dict[str, Any], required: int | None = None) -> dict[str, Any]:
    """One inbox line: id, dataset, reason, age, approvals, masked preview."""
    envelope = state["envelope"]
    return {
        "event_id": state["event_id"],
        "dataset": state["dataset"],
        "status": state["status"],
        "reason": envelope.get("reason"),
        "detail": envelope.get("detail"),
        "held_at_ms": state["held_at_ms"],
        "age_seconds": round(age_seconds(state), 1),
        "approvals": len({a["subject"] for a in state["approvals"]}),
        "required_approvals": required,
        "preview": safe_preview(envelope.get("preview")),
    }


def public_view(state: dict[str, Any], approval: Any = None) -> dict[str, Any]:
    """Everything an approver may see about one hold: never raw bytes or header values."""
    envelope = state["envelope"]
    view = summary(state, approval.required_approvals if approval else None)
    view.update({
        "region": envelope.get("region"),
        "policy_hash": envelope.get("policy_hash"),
        "raw_sha256": envelope.get("raw_sha256"),
        "source": envelope.get("source"),
        "findings": envelope.get("findings", []),
        "header_names": [h[0] for h in envelope.get("raw_headers") or []],
        "producer": envelope.get("producer"),
        "approval_policy": approval.model_dump() if approval is not None else None,
        "approvals_detail": state["approvals"],
        "refusals": state["refusals"],
        "outcome": state["outcome"],
        "provenance": f"/provenance/{quote(state['event_id'], safe='')}/",
    })
    return view
