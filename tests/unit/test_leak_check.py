"""The demo's and the topology tests' leak check: every raw secret, anywhere in any cleared record."""

from __future__ import annotations

import random

from pipeline.generator import GeneratedEvent, generate
from pipeline.harness import Outcomes, leaked


def _event(event_id: str, *secrets: str) -> GeneratedEvent:
    return GeneratedEvent(event_id=event_id, dataset="payments", key=None, value=b"{}", expected="cleared",
                          secrets=list(secrets))


def _cleared(*records: bytes) -> Outcomes:
    outcomes = Outcomes()
    outcomes.cleared_bytes.extend(records)
    return outcomes


def test_a_secret_in_another_events_cleared_record_is_found():
    events = [_event("a", "jane.doe7@example.eu"), _event("b", "DE89370400440532013000")]
    outcomes = _cleared(b'{"note":"nothing here"}', b'{"x":"mail jane.doe7@example.eu"}')
    assert leaked(outcomes, events) == [("a", "secret")]


def test_a_card_number_re_spaced_is_found_by_its_digits_and_short_digit_runs_are_not():
    events = [_event("a", "4111 1111 1111 1111"), _event("b", "12-34-56")]
    assert leaked(_cleared(b'{"card":"4111-1111-1111-1111"}', b'{"n":"123456"}'), events) == [("a", "secret")]


def test_overlapping_and_nested_secrets_are_each_found():
    events = [_event("a", "abcabcab"), _event("b", "cabcabx"), _event("c", "bcab")]
    assert sorted(leaked(_cleared(b"zabcabcabcabxz"), events)) == [("a", "secret"), ("b", "secret"),
                                                                    ("c", "secret")]


def test_nothing_cleared_nothing_leaked():
    assert leaked(_cleared(), [_event("a", "jane.doe7@example.eu")]) == []


def test_it_agrees_with_one_search_per_secret_on_a_generated_mix():
    rng = random.Random(7)
    mix = list(generate(400, seed=11))
    cleared = []
    for event in mix:  # some records keep their secrets, some lose a digit, some lose their spaces
        value = event.value or b""
        choice = rng.random()
        cleared.append(value.replace(b"4", b"x") if choice < 0.4 else
                       value.replace(b" ", b"") if choice < 0.6 else value[: len(value) // 2])
    outcomes = _cleared(*cleared)
    blob = b"\x01".join(cleared)
    digits_blob = bytes(c for c in blob if 48 <= c <= 57)
    expected = []
    for event in mix:
        for secret in event.secrets:
            digits = bytes(c for c in secret.encode() if 48 <= c <= 57)
            if secret.encode() in blob or (len(digits) >= 12 and digits in digits_blob):
                expected.append((event.event_id, "secret"))
    assert expected  # the mix really has leaks to find
    assert leaked(outcomes, mix) == expected
