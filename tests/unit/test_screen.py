"""The pure screening core: one record in, exactly one decision out, no broker."""

from __future__ import annotations

import orjson
import pytest

from pipeline.generator import generate
from pipeline.outputs import output_for, screen_fragment
from pipeline.plan import compile_plans
from pipeline.screen import screen
from schemas.decision import Outcome, RawRecord

CARD = "4111111111111111"
IBAN = "DE89370400440532013000"


@pytest.fixture
def plans(policy_factory, keys):
    return compile_plans(policy_factory(), keys)


def record(value: bytes | dict, key: bytes | None = b"k", headers=(), dataset: str = "payments") -> RawRecord:
    raw = orjson.dumps(value) if isinstance(value, dict) else value
    return RawRecord(f"eu.raw.{dataset}", 1, 42, key, raw, tuple(headers))


def payment(**overrides) -> dict:
    doc = {"payment_id": "pay-1", "amount": 120.5, "currency": "EUR",
           "card": {"number": CARD, "holder": "Anna Berg"},
           "subject": {"email": "anna.berg@example.com", "iban": IBAN, "country": "DE"},
           "note": "all good"}
    doc.update(overrides)
    return doc


def test_when_a_compliant_payment_is_screened_then_it_is_cleared_with_listed_fields_masked(plans):
    decision = screen(record(payment()), plans["payments"])
    assert decision.outcome is Outcome.CLEARED
    out = orjson.loads(decision.value)
    assert out["card"]["number"].endswith("1111") and CARD not in decision.value.decode()
    assert "Anna Berg" not in decision.value.decode()
    assert "anna.berg@example.com" not in decision.value.decode()
    assert IBAN not in decision.value.decode()
    assert {m.path for m in decision.masked} >= {"card.number", "card.holder", "subject.email", "subject.iban"}


def test_when_free_text_holds_a_card_and_an_email_then_they_are_masked_and_reported(plans):
    decision = screen(record(payment(note=f"pay with {CARD} or mail bob@example.org")), plans["payments"])
    assert decision.outcome is Outcome.CLEARED
    assert CARD not in decision.value.decode() and "bob@example.org" not in decision.value.decode()
    assert {(f.type, f.path) for f in decision.findings} >= {("email", "note")}
    assert any(f.path == "note" and "card" in f.type for f in decision.findings)


def test_when_the_amount_is_high_then_the_payment_is_held_with_a_masked_preview(plans):
    decision = screen(record(payment(amount=25_000)), plans["payments"])
    assert decision.outcome is Outcome.HELD and decision.reason == "hold_rule:high-value"
    assert CARD not in orjson.dumps(decision.preview).decode()


@pytest.mark.parametrize("country", ["US", "", None, 49])
def test_when_the_subject_is_foreign_or_unknown_then_the_payment_is_rejected(plans, country):
    doc = payment()
    doc["subject"]["country"] = country
    if country is None:
        del doc["subject"]["country"]
        decision = screen(record(doc), plans["payments"])
        assert decision.outcome is Outcome.DEADLETTER and decision.reason == "contract_violation"
        return
    decision = screen(record(doc), plans["payments"])
    assert decision.outcome is Outcome.REJECTED and decision.reason == "jurisdiction_violation"


def test_when_a_ticket_subject_is_foreign_then_the_policy_holds_it(plans):
    doc = {"ticket_id": "t-1", "body": "hi", "customer": {"country": "BR"}}
    decision = screen(record(doc, dataset="tickets"), plans["tickets"])
    assert decision.outcome is Outcome.HELD and decision.reason == "jurisdiction_violation"


@pytest.mark.parametrize(("raw", "reason"), [
    (b'{"payment_id": ', "invalid_json"),
    (b'{"a": "\xff"}', "not_utf8"),
    (b"[1, 2]", "not_an_object"),
    (b"", "empty_value"),
    (b'{"payment_id": "p", "amount": "x", "currency": "EUR", "subject": {"country": "DE"}}', "contract_violation"),
    (b'{"a": NaN}', "invalid_json"),
    (b"[" * 5000 + b"]" * 5000, "too_deep"),
])
def test_when_input_is_unparseable_then_it_is_dead_lettered_with_a_reason_quoting_no_payload(plans, raw, reason):
    decision = screen(record(raw), plans["payments"])
    assert decision.outcome is Outcome.DEADLETTER and decision.reason == reason
    assert b"\xff" not in decision.detail.encode() and "payment_id" not in decision.detail


def test_when_the_record_is_too_large_then_it_is_dead_lettered(plans):
    big = orjson.dumps(payment(note="x" * 2_000_000))
    assert screen(record(big), plans["payments"]).reason == "too_large"


def test_when_the_event_id_header_is_set_then_it_names_the_event_else_coordinates_do(plans):
    assert screen(record(payment(), headers=[("event-id", b"abc-1")]), plans["payments"]).event_id == "abc-1"
    assert screen(record(payment()), plans["payments"]).event_id == "eu.raw.payments:1:42"
    forged = screen(record(payment(), headers=[("event-id", b"a\nb")]), plans["payments"])
    assert forged.outcome is Outcome.DEADLETTER and forged.reason == "invalid_event_id_header"


@pytest.mark.parametrize("stage", ["policy", "masking", "detection"])
def test_when_a_stage_raises_then_the_record_fails_closed(plans, stage):
    def fault(name: str) -> None:
        if name == stage:
            raise RuntimeError(f"boom {CARD}")

    decision = screen(record(payment()), plans["payments"], fault)
    assert decision.outcome is Outcome.DEADLETTER and decision.reason == "internal_error"
    assert CARD not in decision.detail


def test_when_detection_times_out_then_the_record_is_held(plans):
    def fault(name: str) -> None:
        if name == "detection":
            raise TimeoutError

    assert screen(record(payment()), plans["payments"], fault).outcome is Outcome.HELD


def test_when_the_key_holds_an_email_then_the_cleared_key_is_masked(plans):
    decision = screen(record(payment(), key=b"anna.berg@example.com"), plans["payments"])
    assert decision.outcome is Outcome.CLEARED and b"anna.berg@example.com" not in (decision.key or b"")


def test_when_generated_events_are_screened_then_each_gets_its_labelled_outcome(plans):
    for event in generate(400, seed=3):
        raw = RawRecord(f"eu.raw.{event.dataset}", 0, 0, event.key, event.value, tuple(event.headers))
        decision = screen(raw, plans[event.dataset])
        assert decision.outcome.value == event.expected, (event.event_id, decision.reason)
        if decision.outcome is Outcome.CLEARED:
            for secret in event.secrets:
                assert secret not in decision.value.decode()


def test_when_outputs_are_built_then_restricted_topics_keep_raw_bytes_and_fragments_keep_none(plans):
    plan = plans["payments"]
    raw = record(payment(amount=99_999), headers=[("event-id", b"e1")])
    decision = screen(raw, plan)
    out = output_for(decision, raw, plan)
    assert out.topic == "eu.held" and out.key == b"e1"
    envelope = orjson.loads(out.value)
    assert envelope["raw_value_b64"] and envelope["reason"] == "hold_rule:high-value"
    fragment = orjson.dumps(screen_fragment(decision, raw, plan, out, 0, 7, "t"))
    assert CARD.encode() not in fragment and b"Anna Berg" not in fragment


def test_when_a_held_payment_is_released_then_it_is_cleared_and_masked(plans):
    decision = screen(record(payment(amount=25_000)), plans["payments"], release=True)
    assert decision.outcome is Outcome.CLEARED
    assert CARD not in decision.value.decode() and "anna.berg@example.com" not in decision.value.decode()


def test_when_a_foreign_subject_is_released_then_it_is_still_rejected_where_the_policy_rejects(plans):
    doc = payment()
    doc["subject"]["country"] = "US"
    assert screen(record(doc), plans["payments"], release=True).outcome is Outcome.REJECTED


def test_when_a_held_ticket_is_released_then_the_foreign_subject_clears_masked(plans):
    doc = {"ticket_id": "t-1", "body": f"card {CARD}", "customer": {"country": "BR", "email": "x@example.com"}}
    decision = screen(record(doc, dataset="tickets"), plans["tickets"], release=True)
    assert decision.outcome is Outcome.CLEARED and CARD not in decision.value.decode()


def test_when_unexpected_pii_holds_a_record_then_its_preview_is_redacted(policy_factory, keys):
    plans = compile_plans(policy_factory(replace={"    unexpected_pii: mask\n    hold:": "    unexpected_pii: hold\n    hold:"}), keys)
    decision = screen(record(payment(note=f"card {CARD}")), plans["payments"])
    assert decision.outcome is Outcome.HELD and decision.reason == "unexpected_pii"
    assert CARD not in orjson.dumps(decision.preview).decode()


def test_when_a_field_name_with_pii_repeats_then_every_record_has_it_redacted(plans):
    # Field-name scans are kept between records; a cached result must redact exactly like a fresh one.
    for _ in range(3):
        decision = screen(record(payment(extra={"bob@example.org": "x", "plain": "y"})), plans["payments"])
        assert decision.outcome is Outcome.CLEARED
        assert "bob@example.org" not in decision.value.decode()
        assert ("email", "extra.[email]") in {(f.type, f.path) for f in decision.findings}


def test_when_producers_send_more_distinct_field_names_than_kept_then_each_is_still_scanned(plans):
    import pipeline.screen as screening

    names = {f"field-{i}": "v" for i in range(screening._NAME_SPANS_MAX + 10)}  # noqa: SLF001
    names[f"{'x' * 70}-bob@example.org"] = "long names are never kept"
    decision = screen(record(payment(extra=names)), plans["payments"])
    assert decision.outcome is Outcome.CLEARED and "bob@example.org" not in decision.value.decode()
    assert len(screening._NAME_SPANS) <= screening._NAME_SPANS_MAX  # noqa: SLF001
