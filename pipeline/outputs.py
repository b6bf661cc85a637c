"""Turn a Decision into the one record it produces, and describe it as a provenance fragment.

The cleared record carries the masked key and value plus our own headers; producer headers never
pass through (they are unscreened). Held, rejected and dead-letter records are in-region,
restricted topics and keep the exact original bytes (base64) for review and replay.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from pipeline.attestation import ATTESTATION_HEADER, attestation_message
from pipeline.plan import DatasetPlan
from pipeline.producer_identity import IDENTITY_HEADER, SIGNATURE_HEADER
from schemas.decision import Decision, Outcome, RawRecord

# Credentials never travel on: a token or signature in the raw headers is kept as a name only.
_SECRET_HEADERS = frozenset({IDENTITY_HEADER, SIGNATURE_HEADER})
# Every record we send must fit a default Kafka topic (message.max.bytes 1 MiB) and Faust's producer
# (max_request_size 1,000,000): one that does not fails its send, stops the worker, and stops it again
# after every restart, stalling the partition behind it. Records that would be larger degrade (below).
MAX_OUTPUT_BYTES = 900_000
LISTED_MAX = 1_000  # findings and masking entries kept per record (a huge array must not make a huge record)
PATH_MAX = 200  # characters of a path kept (object keys are producer input and can be any length)


@dataclass(frozen=True, slots=True)
class Seal:
    """An output's attestation, made when it is sent (:func:`sealed`): by whom, and the event id and
    policy hash it covers besides the topic, key and value."""

    attestor: Any
    event_id: str
    policy_hash: str


@dataclass(frozen=True, slots=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    seal: Seal | None = None  # attested at send (cleared and egress records of an attesting fleet)


def sealed(outputs: Sequence[Output]) -> Sequence[Output]:
    """``outputs`` with the attestation header on each one that has a seal: the outputs sent together
    share signatures (pipeline.attestation, v2), so attesting costs one signature per batch."""
    todo = [i for i, out in enumerate(outputs) if out.seal is not None]
    if not todo:
        return outputs
    done = list(outputs)
    by_attestor: dict[Any, list[int]] = {}
    for i in todo:
        by_attestor.setdefault(outputs[i].seal.attestor, []).append(i)
    for attestor, indexes in by_attestor.items():
        messages = [attestation_message(outputs[i].topic, outputs[i].seal.event_id, outputs[i].seal.policy_hash,
                                        outputs[i].key, outputs[i].value) for i in indexes]
        for i, header in zip(indexes, attestor.headers(messages), strict=True):
            out = outputs[i]  # built directly: dataclasses.replace cost more than the rest of sealing
            done[i] = Output(out.topic, out.key, out.value, [*out.headers, (ATTESTATION_HEADER, header)])
    return done


_SECOND: tuple[int, str] = (-1, "")  # the last second formatted, and its text (one tuple: threads may share it)


def now_iso() -> str:
    """Now in UTC to the millisecond, ``2026-11-05T10:22:00.123Z``: each record screened or held
    takes one. The second is formatted once (4.4 us a call through ``datetime``, 1.1 us so)."""
    global _SECOND  # noqa: PLW0603 - a cache
    second, milli = divmod(time.time_ns() // 1_000_000, 1000)
    cached = _SECOND
    if cached[0] != second:
        cached = _SECOND = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{milli:03d}Z"


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


def findings_of(decision: Decision) -> list[dict[str, Any]]:
    """At most ``LISTED_MAX`` findings: type and (shortened) path, never the value."""
    return [{"type": f.type, "path": f.path[:PATH_MAX]} for f in decision.findings[:LISTED_MAX]]


def masking_of(masked: Sequence[Any]) -> list[dict[str, Any]]:
    """At most ``LISTED_MAX`` masks applied: strategy, key id and (shortened) path."""
    return [{"strategy": m.strategy, "key_id": m.key_id, "path": m.path[:PATH_MAX]} for m in masked[:LISTED_MAX]]


_SEAL_BYTES = 512  # the attestation header a seal becomes: name, key id, signature, index, count, path


def _size(out: Output) -> int:
    return (len(out.key or b"") + len(out.value) + sum(len(k) + len(v) for k, v in out.headers)
            + (_SEAL_BYTES if out.seal is not None else 0))


def _restricted_envelope(decision: Decision, record: RawRecord, plan: DatasetPlan,
                         copy_raw: bool = True) -> dict[str, Any]:
    if not copy_raw:  # the bytes stay on the raw topic at the source coordinates; the hash identifies them
        return {**_restricted_envelope(decision, record, plan), "raw_value_b64": None, "raw_key_b64": None,
                "raw_headers": [], "raw_omitted": True, "raw_value_bytes": len(record.value or b"")}
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
        "findings": findings_of(decision),
        "producer": decision.producer,
    }


def _seal(plan: DatasetPlan, event_id: str) -> Seal | None:
    return None if plan.attestor is None else Seal(plan.attestor, event_id, plan.policy_hash)


def output_for(decision: Decision, record: RawRecord, plan: DatasetPlan) -> Output:
    """The single record this decision sends, and where; never larger than ``MAX_OUTPUT_BYTES``.

    A rejected or dead-letter record too large with its raw copy goes without it (``raw_omitted``). A
    cleared or held record that would be too large, and any still too large, turns ``decision`` into a
    dead-letter ``output_too_large`` (a hold needs its raw bytes for release, so it cannot shed them).
    """
    out = _output_for(decision, record, plan, copy_raw=decision.reason != "too_large")
    if _size(out) <= MAX_OUTPUT_BYTES:
        return out
    if decision.outcome in (Outcome.REJECTED, Outcome.DEADLETTER):
        out = _output_for(decision, record, plan, copy_raw=False)
        if _size(out) <= MAX_OUTPUT_BYTES:
            return out
    return _too_large(decision, record, plan, _size(out))


def _too_large(decision: Decision, record: RawRecord, plan: DatasetPlan, size: int) -> Output:
    """Turn ``decision`` into the dead-letter ``output_too_large`` and return its record."""
    was = decision.outcome.value
    decision.outcome, decision.reason = Outcome.DEADLETTER, "output_too_large"
    decision.detail = f"the {was} record would be {size} bytes, over the {MAX_OUTPUT_BYTES}-byte output limit"
    decision.value = decision.key = decision.preview = None
    decision.egress = []
    return _output_for(decision, record, plan, copy_raw=False)


def _output_for(decision: Decision, record: RawRecord, plan: DatasetPlan, copy_raw: bool) -> Output:
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
        return Output(plan.cleared_topic, decision.key, decision.value, headers, _seal(plan, decision.event_id))
    envelope = _restricted_envelope(decision, record, plan, copy_raw)
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
        outputs.append(Output(egress.topic, egress.key, egress.value, headers, _seal(plan, decision.event_id)))
    return outputs


def outputs_for(decision: Decision, record: RawRecord, plan: DatasetPlan) -> list[Output]:
    """Every record this decision sends: the one outcome, then one per egress profile when cleared."""
    main = output_for(decision, record, plan)
    egress = egress_outputs(decision, record, plan)
    too_large = max((_size(o) for o in egress), default=0)
    if too_large <= MAX_OUTPUT_BYTES:
        return [main, *egress]
    return [_too_large(decision, record, plan, too_large)]


def screen_fragment(decision: Decision, record: RawRecord, plan: DatasetPlan, output: Output,
                    partition: int | None, offset: int | None, received_at: str,
                    more: list[tuple[Output, int | None, int | None]] = (), at: str | None = None) -> dict[str, Any]:
    """The provenance fragment of the screening stage; never holds a payload value.

    ``output`` is the one outcome record; ``more`` are the egress profiles' records with their
    coordinates. ``destinations`` lists every one of them. ``at``: when the batch was decided
    (now by default). The worker sends the same fragment through :func:`prepare` and
    :func:`fragment_json`, which encode these fields before the coordinates are known.
    """
    emitted = sha256(output.value)
    placed = [(output, partition, offset), *more]
    destinations = [{"partition": p, "offset": off, **_destination(decision, o, emitted if n == 0 else None)}
                    for n, (o, p, off) in enumerate(placed)]
    return {**_fragment_fields(decision, record, plan, emitted), "at": at or now_iso(), "received_at": received_at,
            "destination": {"topic": output.topic, "partition": partition, "offset": offset},
            "destinations": destinations}


def _fragment_fields(decision: Decision, record: RawRecord, plan: DatasetPlan, emitted: str | None) -> dict[str, Any]:
    """A screen fragment's fields that do not depend on where its outputs went or when."""
    return {
        "event_id": decision.event_id,
        "stage": "screen",
        "region": plan.region,
        "dataset": plan.name,
        "policy_hash": plan.policy_hash,
        "source": _source(record),
        "producer": decision.producer,
        "decision": decision.outcome.value,
        "reason": decision.reason,
        "detail": decision.detail,
        "findings": findings_of(decision),
        "masking": masking_of(decision.masked),
        "raw_sha256": sha256(record.value),
        "emitted_sha256": emitted,
    }


def _destination(decision: Decision, output: Output, emitted: str | None) -> dict[str, Any]:
    """An output's entry in ``destinations`` but its partition and offset; ``emitted``: the outcome
    record's hash, already computed (None for an egress record, whose profile is named)."""
    if emitted is not None:
        return {"topic": output.topic, "sha256": emitted}
    entry: dict[str, Any] = {"topic": output.topic, "sha256": sha256(output.value)}
    egress = {e.topic: e for e in decision.egress}.get(output.topic)
    if egress is not None:
        entry["profile"] = egress.profile
        entry["masking"] = masking_of(egress.masked)
    return entry


# --- a screened record, ready to send ------------------------------------------------------------

class Prepared(NamedTuple):
    """A screened record as the worker sends it, made where it was screened (a screen helper or the
    worker's thread) so that the worker's event loop only splices in what the broker answers.

    A helper sent ``Decision`` objects back and the worker built the outputs and the provenance
    fragment from them: unpickling, ``outputs_for`` and ``screen_fragment`` held ~19% of the worker's
    main thread, the fleet's bound (docs/benchmarks.md, session 9). A named tuple of strings and
    bytes unpickles for a fraction of that.

    ``outputs``: ``(topic, key, value, headers, sealable)`` per output record, the outcome first
    (``sealable``: attested at send when the fleet attests, see :func:`outputs_of`). ``fragment``: the
    provenance fragment's JSON object without its closing brace and without what is known only once
    the outputs are acknowledged (``at``, ``received_at``, ``destination``, ``destinations``);
    ``destinations[i]``: ``outputs[i]``'s entry in ``destinations`` after its partition and offset,
    closing brace included. :func:`fragment_json` completes it; it equals :func:`screen_fragment`'s
    (``tests/unit/test_prepared.py``). ``finding_types`` and ``mask_strategies`` are for the metrics.
    """

    event_id: str
    outcome: str
    reason: str
    finding_types: tuple[str, ...]
    mask_strategies: tuple[str, ...]
    outputs: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]], bool]]
    fragment: bytes
    destinations: list[bytes]


def prepare(decision: Decision, record: RawRecord, plan: DatasetPlan) -> Prepared:
    """``decision`` (with its producer set) as the worker sends it: its outputs and its fragment."""
    outputs = outputs_for(decision, record, plan)  # may turn the decision into output_too_large
    sealable = decision.outcome is Outcome.CLEARED  # its outcome and egress records are attested
    emitted = sha256(outputs[0].value)
    destinations = [orjson.dumps(_destination(decision, out, emitted if n == 0 else None))[1:]
                    for n, out in enumerate(outputs)]
    return Prepared(decision.event_id, decision.outcome.value, decision.reason,
                    tuple(f.type for f in decision.findings), tuple(m.strategy for m in decision.masked),
                    [(o.topic, o.key, o.value, o.headers, sealable) for o in outputs],
                    orjson.dumps(_fragment_fields(decision, record, plan, emitted))[:-1], destinations)


def outputs_of(prepared: Prepared, plan: DatasetPlan) -> list[Output]:
    """The records ``prepared`` sends, sealed by ``plan``'s attestor where they are to be attested
    (the helper that prepared them holds no attestation key)."""
    seal = _seal(plan, prepared.event_id)
    return [Output(topic, key, value, headers, seal if sealable else None)
            for topic, key, value, headers, sealable in prepared.outputs]


def _json_int(value: int | None) -> bytes:
    return b"null" if value is None else b"%d" % value


def fragment_json(prepared: Prepared, places: Sequence[tuple[int | None, int | None]], received_at: bytes,
                  at: bytes) -> bytes:
    """The provenance fragment of ``prepared`` as JSON, its outputs at ``places`` (partition, offset,
    in the order of ``prepared.outputs``); ``received_at`` and ``at`` are JSON strings."""
    entries = b",".join(b'{"partition":%s,"offset":%s,%s' % (_json_int(p), _json_int(o), tail)
                        for (p, o), tail in zip(places, prepared.destinations, strict=True))
    partition, offset = places[0]
    topic = orjson.dumps(prepared.outputs[0][0])
    return (b'%s,"at":%s,"received_at":%s,"destination":{"topic":%s,"partition":%s,"offset":%s},"destinations":[%s]}'
            % (prepared.fragment, at, received_at, topic, _json_int(partition), _json_int(offset), entries))
