"""The bare-card fast path (``pipeline/detection/bare_card.py``) returns what the general path returns.

Whenever ``BareCard.find`` answers, its one span must be exactly the merged spans of the general
engine (``engine._scan_general``) for the same text and hint. Checked on the whole detection corpus
and, with hypothesis, on card numbers of every length in near misses: ``+``/``(``/``00`` before the
digits, letters or joiners glued to them, a second digit block, non-ASCII digits, zero-width
characters, NUL, decoder markers, phone context words and IBAN-like country letters around them.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.detection import Budget, engine, scan
from pipeline.detection.base import Span
from pipeline.detection.facts import Facts
from pipeline.detection.iban import iban_valid
from pipeline.generator import card_number, luhn_complete
from pipeline.normalize import normalize
from tests.unit import detection_corpus

SETTINGS = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Issuer prefixes covering every card length from 13 to 19, plus ones no issuer uses.
PREFIXES = ["4", "51", "55", "2221", "2720", "34", "37", "300", "36", "38", "3528", "2200", "50", "6011", "62",
            "1", "9", "0", "00"]
EDGES = ["", " ", "  ", "+", "+ ", "(", "( ", ")", "00", "0 ", "00 ", "a", "x", "DE", "DE ", "de89 ", "AT ", "at ",
         "\0", " \0", "\u200b", " \u200b", "\u0663", " \u0663 ", "\uff11", "-", " -", ".", " .", "/", "#", "_",
         "\\", " \\u0034 ", "%", " %34", "@", " @ ", ":", " :: ", "\n", "\t", " 1", " 12 ", "1 ", " 4111 ",
         " tel ", " call ", " phone: ", " order no ", " SSN ", " [at] ", " 2A ", " x ", " y ", " Z"]
WORDS = ["Customer", "asked", "to", "refund", "card", "and", "confirm", "by", "mail", "at", "de", "it", "no", "is",
         "be", "me", "x", "yz", "call", "tel", "phone", "contact", "ring", "order", "sku", "ssn", "nir", "iban",
         "AAAAAAAA", "SGVsbG8gd29ybGQ", "aGVsbG8", "dGVzdA==", "mail@example.com", "a.b", "::", "v1", "+", "(",
         "Ω", "é", "\u200d", "\0", "%41", "\\n", "2A", "X", "L", "Z"]
HINTS = detection_corpus.HINTS


def general(text: str, hint: str | None) -> tuple[list[Span], int]:
    """``scan`` without the fast path: its spans, and the characters it charged to the budget."""
    budget = Budget(None, None)
    budget.charge(len(text))
    view = normalize(text)
    found = engine._scan_general(view, Facts(view.data), budget, hint, 0)
    return engine.merge([Span(kind, start, end) for kind, start, end in found if end > start]), budget.chars


def fast(text: str, hint: str | None) -> tuple[list[Span], int] | None:
    """What ``scan`` returns and charges through the fast path, or None when it does not apply."""
    if engine._all().bare_card.find(text, hint) is None:
        return None
    budget = Budget(None, None)
    return scan(text, budget, hint=hint), budget.chars


def card_digits(rng: random.Random, valid: bool = True) -> str:
    prefix = rng.choice(PREFIXES)
    length = rng.randint(max(13, len(prefix) + 1), 19)
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return luhn_complete(body) if valid else body + rng.choice("0123456789")


@st.composite
def near_misses(draw: st.DrawFn) -> str:
    rng = random.Random(draw(st.integers(0, 2**32)))
    digits = card_digits(rng, valid=draw(st.booleans()) or draw(st.booleans()))
    before = " ".join(draw(st.lists(st.sampled_from(WORDS), max_size=6)))
    after = " ".join(draw(st.lists(st.sampled_from(WORDS), max_size=6)))
    left, right = draw(st.sampled_from(EDGES)), draw(st.sampled_from(EDGES))
    if draw(st.booleans()):  # the usual shape: words, a space, the digits, a space, words
        left, right = " " + left if left[:1] != " " else left, right + " " if right[-1:] != " " else right
    return before + left + digits + right + after


def test_the_fast_path_answers_for_the_bench_notes():
    rng = random.Random(5)
    for _ in range(200):
        text = f"Customer asked to refund to card {card_number(rng)} and confirm by mail"
        assert fast(text, "note") is not None
        assert fast(text, "note") == general(text, "note")


def test_on_the_detection_corpus_the_fast_path_agrees_with_the_general_one():
    answered = 0
    for group in detection_corpus.groups():
        for text, hint in group:
            spans = fast(text, hint)
            if spans is not None:
                answered += 1
                assert spans == general(text, hint)
    assert answered > 300  # the corpus's bench notes at least


@SETTINGS
@given(near_misses(), st.sampled_from(HINTS))
def test_on_near_misses_the_fast_path_agrees_with_the_general_one(text: str, hint: str | None):
    spans = fast(text, hint)
    if spans is not None:
        assert spans == general(text, hint)
    assert scan(text, Budget(None, None), hint=hint) == general(text, hint)[0]


@SETTINGS
@given(st.text(alphabet=detection_corpus.NOISY + "\0\u200b\u0663 ", max_size=40), st.integers(0, 2**32),
       st.text(alphabet=detection_corpus.NOISY + "\0\u200b\u0663 ", max_size=40), st.sampled_from(HINTS))
def test_around_random_noise_the_fast_path_agrees_with_the_general_one(before: str, seed: int, after: str,
                                                                      hint: str | None):
    text = f"{before} {card_digits(random.Random(seed))} {after}"
    spans = fast(text, hint)
    if spans is not None:
        assert spans == general(text, hint)


def test_each_near_miss_edge_falls_back_or_agrees():
    rng = random.Random(11)
    for left in EDGES:
        for right in EDGES:
            for hint in HINTS:
                text = f"refund to{left}{card_digits(rng)}{right}please"
                spans = fast(text, hint)
                if spans is not None:
                    assert spans == general(text, hint), (left, right, hint)
    # The shapes that must never take the fast path.
    card = card_digits(rng)
    for text in (f"call + {card}", f"refund (card {card}", f"x{card} y", f"a {card} {card}", f"a \u0663{card} b",
                 f"a {card[:6]}\u200b{card[6:]} b", f"a {card}\0 b", f"tel: {card}", f"a {card} %41",
                 f"a {card[:-1]}\uff11 b"):
        assert fast(text, None) is None, text


def test_a_card_number_that_is_also_part_of_another_finding_takes_the_general_path():
    # Digits that are a valid card and, after "NO ", a valid Norwegian IBAN (found by search).
    rng, ibans = random.Random(3), []
    while len(ibans) < 3:
        digits = luhn_complete("4" + "".join(rng.choice("0123456789") for _ in range(11)))
        if iban_valid("NO" + digits):
            ibans.append(digits)
    card = card_number(rng)
    cases = [(f"pay NO {digits} now", "iban") for digits in ibans] + [(f"NO {ibans[0]}", "iban"),
             (f"mail {card} [at] example.com", "email"), (f"{card} {{at}} example.org", "email")]
    for text, kind in cases:
        assert fast(text, None) is None, text
        spans, _ = general(text, None)
        assert [span.type for span in spans] == [kind]
