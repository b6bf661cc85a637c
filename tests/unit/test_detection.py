"""Detectors one by one: a valid value is found in context, a near miss is not."""

from __future__ import annotations

import random

import pytest

from pipeline.detection import Span, detector_names, detectors, redact_spans, scan
from pipeline.detection import samples

RNG = random.Random(3)

POSITIVES = [(kind, template.format(v=gen(RNG))) for kind, gen in samples.GENERATORS.items()
             for template in samples.TEMPLATES[kind] for _ in range(3)]


@pytest.mark.parametrize(("kind", "text"), POSITIVES)
def test_when_text_holds_a_valid_value_then_it_is_found_with_its_type(kind, text):
    spans = scan(text)
    assert [s.type for s in spans] == [kind]


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112",  # Luhn fails
        "card 1234 5678 9012 3452",  # no issuer starts with 1
        "IBAN DE89 3704 0044 0532 0130 01",  # mod 97 fails
        "IBAN DE89 3704 0044 0532 0130",  # too short for DE
        "ssn 000-12-3456",  # area 000 is never issued
        "123456789",  # an SSN-shaped number without label or format
        "9434765919",  # a valid NHS number without label or NHS format
        "111222333",  # a valid BSN without label
        "Order #12345678903",
        "1Z999AA10123456784",
        "2024-01-15 10:30:00",
        "1700000000000",
        "v1.2.3.4",
        "version 10.0.0.1",
        "std::cout << x",
        "mac 00:1a:2b:3c:4d:5e",
        "price $1,299.00",
        "SKU 555-123-4567",
        "user at example",
        "d41d8cd98f00b204e9800998ecf8427e",
        "550e8400-e29b-41d4-a716-446655440000",
    ],
)
def test_when_text_is_a_near_miss_then_nothing_is_found(text):
    assert scan(text) == []


def test_when_detectors_are_listed_then_each_has_name_and_country():
    names = detector_names()
    assert {"card", "iban", "email", "phone", "ipv4", "ipv6", "us_ssn", "gb_nhs", "de_idnr", "fr_nir",
            "es_dni", "es_nie", "it_codice_fiscale", "nl_bsn", "pl_pesel", "se_personnummer"} <= set(names)
    for name, cls in detectors().items():
        assert cls.name == name and (cls.country is None or len(cls.country) == 2)
    assert detectors()["card"].country is None and detectors()["nl_bsn"].country == "NL"


def test_when_hint_names_the_field_then_weak_ids_are_confirmed_by_it():
    assert scan("111222333") == []
    assert [s.type for s in scan("111222333", hint="bsn")] == ["nl_bsn"]


def test_when_spans_overlap_then_they_are_merged_and_sorted():
    spans = scan("mail a@example.com and 4111111111111111 then b@example.org")
    assert [s.type for s in spans] == ["email", "card", "email"]
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))


def test_when_spans_are_redacted_then_format_uses_the_type():
    text = "pay 4111111111111111 now"
    assert redact_spans(text, scan(text)) == "pay [card] now"
    assert redact_spans(text, [Span("card", 4, 20)], fmt="<{type}>") == "pay <card> now"


def test_when_a_finding_is_reported_then_it_carries_no_value():
    span = scan("4111111111111111")[0]
    assert "4111" not in repr(span) and set(Span.__slots__) == {"type", "start", "end"}
