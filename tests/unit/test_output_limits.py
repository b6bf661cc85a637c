"""Every record the worker sends fits a default Kafka topic: oversize outcomes degrade, never crash a send."""

from __future__ import annotations

import orjson
import pytest

from pipeline.outputs import LISTED_MAX, MAX_OUTPUT_BYTES, outputs_for, screen_fragment
from pipeline.plan import compile_plans
from pipeline.screen import screen
from schemas.decision import Outcome, RawRecord


@pytest.fixture
def plans(policy_factory, keys):
    return compile_plans(policy_factory(), keys)


def _record(value: bytes, dataset: str = "tickets") -> RawRecord:
    return RawRecord(f"eu.raw.{dataset}", 0, 5, None, value, (("event-id", b"big-1"),))


def _sent(plans, value: bytes, dataset: str = "tickets"):
    plan = plans[dataset]
    record = _record(value, dataset)
    decision = screen(record, plan)
    outs = outputs_for(decision, record, plan)
    assert all(len(o.value) + len(o.key or b"") <= MAX_OUTPUT_BYTES for o in outs)
    return decision, outs


def test_when_a_large_invalid_record_is_dead_lettered_then_its_raw_copy_is_left_out(plans):
    decision, [out] = _sent(plans, b'{"x": "' + b"a" * 900_000)
    envelope = orjson.loads(out.value)
    assert (decision.outcome, decision.reason) == (Outcome.DEADLETTER, "invalid_json")
    assert envelope["raw_omitted"] and envelope["raw_value_b64"] is None and envelope["raw_value_bytes"] == 900_007
    assert envelope["raw_sha256"]


def test_when_a_small_invalid_record_is_dead_lettered_then_its_raw_copy_is_kept(plans):
    _, [out] = _sent(plans, b'{"x": ')
    assert orjson.loads(out.value)["raw_value_b64"]


def test_when_a_record_is_too_large_then_the_dead_letter_never_copies_it(plans, policy_factory, keys):
    plan = compile_plans(policy_factory(replace={"  tickets:\n    partitions: 3\n":
                                                 "  tickets:\n    partitions: 3\n    max_record_bytes: 2048\n"}),
                         keys)["tickets"]
    record = _record(b'{"x": "' + b"a" * 5000 + b'"}')
    decision = screen(record, plan)
    [out] = outputs_for(decision, record, plan)
    assert decision.reason == "too_large" and orjson.loads(out.value)["raw_value_b64"] is None


def test_when_a_held_record_would_be_too_large_then_it_is_dead_lettered_not_sent(plans):
    body = "x " * 300_000
    doc = {"ticket_id": "t1", "body": body, "customer": {"country": "US"}}  # foreign: held
    decision, [out] = _sent(plans, orjson.dumps(doc))
    assert (decision.outcome, decision.reason) == (Outcome.DEADLETTER, "output_too_large")
    assert out.topic.endswith(".deadletter") and body.encode() not in out.value


def test_when_a_record_has_many_findings_then_lists_are_capped(plans):
    emails = [f"u{i}@example.com" for i in range(3_000)]
    doc = {"ticket_id": "t1", "body": "hi", "customer": {"country": "DE"}, "cc": emails}
    plan = plans["tickets"]
    record = _record(orjson.dumps(doc))
    decision = screen(record, plan)
    [out, *_] = outputs_for(decision, record, plan)
    fragment = screen_fragment(decision, record, plan, out, 0, 1, "now")
    assert len(fragment["findings"]) <= LISTED_MAX


def test_when_an_object_key_holds_personal_data_then_the_key_is_redacted_and_reported(plans):
    doc = {"ticket_id": "t1", "body": "hi", "customer": {"country": "DE"},
           "4111111111111111": "card as a key", "cc": {"mail a@example.com": 1, "mail b@example.com": 2}}
    decision, [out] = _sent(plans, orjson.dumps(doc))
    assert decision.outcome is Outcome.CLEARED
    assert b"4111111111111111" not in out.value and b"example.com" not in out.value
    assert len(orjson.loads(out.value)["cc"]) == 2
    assert {f.type for f in decision.findings} >= {"card", "email"}
    assert all("4111" not in f.path and "example" not in f.path for f in decision.findings)


@pytest.mark.parametrize("nested", [b"[" * 10_000 + b"]" * 10_000, b"[" * 1_000 + b"]" * 1_000,
                                    b'{"a":' * 1_000 + b"1" + b"}" * 1_000])
def test_when_nesting_is_too_deep_then_the_record_is_dead_lettered_as_too_deep(plans, nested):
    value = b'{"ticket_id": "t1", "body": "hi", "customer": {"country": "DE"}, "n": ' + nested + b"}"
    decision, _ = _sent(plans, value)
    assert (decision.outcome, decision.reason) == (Outcome.DEADLETTER, "too_deep")
