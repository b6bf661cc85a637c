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

from pipeline.attestation import ATTESTATION_HEADER
from pipeline.plan import DatasetPlan
from pipeline.producer_identity import IDENTITY_HEADER, SIGNATURE_HEADER
from schemas.decision import Decision, Outcome, RawRecord

# Credentials never travel on: a token or signature in the raw headers is kept as a name only.
_SECRET_HEADERS = frozenset({IDENTITY_HEADER, SIGNATURE_HEADER})


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
        "raw_headers": [[k, None if k in _SECRET_HEADERS else _b64(v)] for k, v in record.headers],
        "findings": [{"type": f.type, "path": f.path} for f in decision.findings],
        "producer": decision.producer,
    }


def _attested(plan: DatasetPlan, topic: str, event_id: str, key: bytes | None, value: bytes,
              headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    if plan.attestor is None:
        return headers
    return [*headers, (ATTESTATION_HEADER, plan.attestor.header(topic, event_id, plan.policy_hash, key, value))]


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
        return Output(plan.cleared_topic, decision.key, decision.value,
                      _attested(plan, plan.cleared_topic, decision.event_id, decision.key, decision.value, headers))
    envelope = _restricted_envelope(decision, record, plan)
    if decision.outcome is Outcome.HELD:
        envelope["preview"] = decision.preview
        envelope["held_at_ms"] = int(time.time() * 1000)
        return Output(plan.held_topic, event_key, orjson.dumps(envelope), headers)
    topic = plan.rejected_topic if decision.outcome is Outcome.REJECTED else plan.deadletter_topic
    return Output(topic, event_key, orjson.dumps(envelope), headers)


def egress_outputs(decision: Decision, record: RawRecord, plan: DatasetPlan) -> list[Output]:
    """One record per egress profile of a cleared decision (none otherwise), attested like cleared."""
    outputs = []
    for egress in decision.egress:
        profile = next(p for p in plan.egress if p.name == egress.profile)
        headers = [
            ("event-id", decision.event_id.encode()),
            ("residency-source", f"{record.topic}:{record.partition}:{record.offset}".encode()),
            ("policy-hash", plan.policy_hash.encode()),
            ("residency-region", plan.region.encode()),
            ("residency-decision", decision.outcome.value.encode()),
            ("residency-egress-profile", egress.profile.encode()),
            ("residency-egress-region", profile.region.encode()),
        ]
        outputs.append(Output(egress.topic, egress.key, egress.value,
                              _attested(plan, egress.topic, decision.event_id, egress.key, egress.value, headers)))
    return outputs


def outputs_for(decision: Decision, record: RawRecord, plan: DatasetPlan) -> list[Output]:
    """Every record this decision sends: the one outcome, then one per egress profile when cleared."""
    return [output_for(decision, record, plan), *egress_outputs(decision, record, plan)]


def screen_fragment(decision: Decision, record: RawRecord, plan: DatasetPlan, output: Output,
                    partition: int | None, offset: int | None, received_at: str,
                    more: list[tuple[Output, int | None, int | None]] = ()) -> dict[str, Any]:
    """The provenance fragment of the screening stage; never holds a payload value.

    ``output`` is the one outcome record; ``more`` are the egress profiles' records with their
    coordinates. ``destinations`` lists every one of them.
    """
    destinations = [{"topic": o.topic, "partition": p, "offset": off, "sha256": sha256(o.value)}
                    for o, p, off in [(output, partition, offset), *more]]
    profiles = {e.topic: e for e in decision.egress}
    for dest in destinations[1:]:
        egress = profiles.get(dest["topic"])
        if egress is not None:
            dest["profile"] = egress.profile
            dest["masking"] = [{"path": m.path, "strategy": m.strategy, "key_id": m.key_id} for m in egress.masked]
    return {
        "event_id": decision.event_id,
        "stage": "screen",
        "at": now_iso(),
        "received_at": received_at,
        "region": plan.region,
        "dataset": plan.name,
        "policy_hash": plan.policy_hash,
        "source": _source(record),
        "producer": decision.producer,
        "decision": decision.outcome.value,
        "reason": decision.reason,
        "detail": decision.detail,
        "findings": [{"type": f.type, "path": f.path} for f in decision.findings],
        "masking": [{"path": m.path, "strategy": m.strategy, "key_id": m.key_id} for m in decision.masked],
        "destination": {"topic": output.topic, "partition": partition, "offset": offset},
        "destinations": destinations,
        "raw_sha256": sha256(record.value),
        "emitted_sha256": sha256(output.value),
    }
