"""Turn a Decision into the one record it produces, and describe it as a provenance fragment.

The cleared record carries the masked key and value plus our own headers; producer headers never
pass through (they are unscreened). Held, rejected and dead-letter records are in-region,
restricted topics and keep the exact original bytes (base64) for review and replay.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.plan import DatasetPlan
from schemas.decision import Decision, Outcome, RawRecord


@dataclass(frozen=True, slots=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _source(record: RawRecord) -> dict[str, Any]:
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
    }


def _restricted_envelope(decision: Decision, record: RawRecord, plan: DatasetPlan) -> dict[str, Any]:
    return {
        "event_id": decision.event_id,
        "dataset": plan.name,
        "region": plan.region,
        "policy_hash": plan.policy_hash,
        "outcome": decision.outcome.value,
        "reason": decision.reason,
        "detail": decision.detail,
        "at": now_iso(),
        "source": _source(record),
        "raw_sha256": sha256(record.value),
        "raw_value_b64": _b64(record.value),
        "raw_key_b64": _b64(record.key),
        "raw_headers": [[k, _b64(v)] for k, v in record.headers],
        "findings": [{"type": f.type, "path": f.path} for f in decision.findings],
    }


def output_for(decision: Decision, record: RawRecord, plan: DatasetPlan) -> Output:
    """The single record this decision sends, and where."""
    event_key = decision.event_id.encode()
    headers = [
        ("event-id", event_key),
        ("residency-source", f"{record.topic}:{record.partition}:{record.offset}".encode()),
        ("policy-hash", plan.policy_hash.encode()),
        ("residency-region", plan.region.encode()),
        ("residency-decision", decision.outcome.value.encode()),
    ]
    if decision.outcome is Outcome.CLEARED:
        assert decision.value is not None  # screen() always sets it for cleared
        return Output(plan.cleared_topic, decision.key, decision.value, headers)
    envelope = _restricted_envelope(decision, record, plan)
    if decision.outcome is Outcome.HELD:
        envelope["preview"] = decision.preview
        envelope["held_at_ms"] = int(time.time() * 1000)
        return Output(plan.held_topic, event_key, orjson.dumps(envelope), headers)
    topic = plan.rejected_topic if decision.outcome is Outcome.REJECTED else plan.deadletter_topic
    return Output(topic, event_key, orjson.dumps(envelope), headers)


def screen_fragment(decision: Decision, record: RawRecord, plan: DatasetPlan, output: Output,
                    partition: int | None, offset: int | None, received_at: str) -> dict[str, Any]:
    """The provenance fragment of the screening stage; never holds a payload value."""
    return {
        "event_id": decision.event_id,
        "stage": "screen",
        "at": now_iso(),
        "received_at": received_at,
        "region": plan.region,
        "dataset": plan.name,
        "policy_hash": plan.policy_hash,
        "source": _source(record),
        "producer": None,
        "decision": decision.outcome.value,
        "reason": decision.reason,
        "detail": decision.detail,
        "findings": [{"type": f.type, "path": f.path} for f in decision.findings],
        "masking": [{"path": m.path, "strategy": m.strategy, "key_id": m.key_id} for m in decision.masked],
        "destination": {"topic": output.topic, "partition": partition, "offset": offset},
        "raw_sha256": sha256(record.value),
        "emitted_sha256": sha256(output.value),
    }
