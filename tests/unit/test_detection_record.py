"""Record-level detection (``scan_each``) finds exactly what per-string ``scan`` finds.

The pre-filter in front of it must be a sound over-approximation: a string ``scan`` flags is never
skipped. Checked as a differential over a corpus of ~43,000 texts (the bench events' values, names
and keys, both detection corpora, evasive values, random and glued strings), and with hypothesis on
arbitrary text, on text built from the bytes the detectors look at, and on base64 of arbitrary bytes.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.detection import Budget, samples, scan, scan_each
from pipeline.detection.encoded import base64_text
from pipeline.detection.readable import READABLE_START
from pipeline.detection.record import candidates
from tests.unit import detection_corpus

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BYTES_THE_DETECTORS_READ = "0123456789 0123456789 abcxyzAEXZ .-/:@%\\+=_()[]<>{}\"'#\n\tu\u200b\uff11\u0663\x00"


def unbounded() -> Budget:
    return Budget(max_seconds=None, max_chars=None)


def per_string(group: list[tuple[str, str | None]]) -> list[tuple[int, list]]:
    found = [(i, scan(text, unbounded(), hint=hint)) for i, (text, hint) in enumerate(group)]
    return [(i, spans) for i, spans in found if spans]


def per_record(group: list[tuple[str, str | None]]) -> list[tuple[int, list]]:
    return scan_each([text for text, _ in group], unbounded(), lambda i: group[i][1])


@pytest.fixture(scope="module")
def corpus() -> list[list[tuple[str, str | None]]]:
    return detection_corpus.groups()


def test_when_the_corpus_is_scanned_per_record_then_every_finding_and_span_is_the_per_string_one(corpus):
    texts = sum(len(group) for group in corpus)
    assert texts > 40_000  # the corpus is as large as the docs say
    flagged = 0
    for group in corpus:
        expected = per_string(group)
        assert per_record(group) == expected, [group[i][0] for i, _ in expected][:3]
        flagged += len(expected)
    assert 0.05 * texts < flagged < 0.5 * texts  # both clean and flagged texts are well represented


def test_when_the_bench_events_are_prefiltered_then_only_strings_with_findings_are_scanned():
    # Not needed for soundness, but the point of the pre-filter: IDs, timestamps, user agents, URLs
    # and prose never reach scan().
    scanned = flagged = 0
    for group in detection_corpus.event_groups(300):
        texts = [text for text, _ in group]
        chosen = candidates(texts)
        scanned += len(chosen)
        flagged += sum(bool(scan(texts[i])) for i in chosen)
    assert scanned == flagged > 0


@SETTINGS
@given(st.lists(st.text(max_size=80), max_size=12))
def test_when_arbitrary_texts_are_scanned_per_record_then_the_findings_are_per_string_ones(texts):
    group = [(text, None) for text in texts]
    assert per_record(group) == per_string(group)


@SETTINGS
@given(st.lists(st.text(alphabet=BYTES_THE_DETECTORS_READ, max_size=60), min_size=1, max_size=8),
       st.sampled_from(detection_corpus.HINTS))
def test_when_texts_are_made_of_the_bytes_detectors_read_then_none_that_scan_flags_is_skipped(texts, hint):
    chosen = set(candidates(texts))
    for i, text in enumerate(texts):
        if scan(text, unbounded(), hint=hint):
            assert i in chosen, text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(samples.GENERATORS)), st.randoms(use_true_random=False),
       st.text(alphabet=BYTES_THE_DETECTORS_READ, max_size=8), st.text(alphabet=BYTES_THE_DETECTORS_READ, max_size=8))
def test_when_a_valid_value_is_evaded_and_glued_to_noise_then_per_record_equals_per_string(kind, rng, before, after):
    text = before + detection_corpus.evasive(kind, rng) + after
    group = [("EUR", None), (text, "note"), ("2026-11-05T10:22:00Z", "created_at")]
    assert per_record(group) == per_string(group)


@SETTINGS
@given(st.binary(min_size=6, max_size=48), st.booleans(), st.integers(min_value=0, max_value=2))
def test_when_a_base64_run_decodes_to_text_then_the_readable_start_admits_it(raw, urlsafe, cut):
    token = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).rstrip(b"=")
    token = token[: len(token) - cut] if len(token) - cut >= 8 else token
    if base64_text(token) is not None:
        assert READABLE_START.search(b"\0" + token + b"\0") is not None


@SETTINGS
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_", min_size=8, max_size=40))
def test_when_any_base64_run_decodes_to_text_then_the_readable_start_admits_it(token):
    if base64_text(token.encode()) is not None:
        assert READABLE_START.search(b" " + token.encode()) is not None


def test_when_a_string_holds_a_nul_then_it_is_always_scanned():
    texts = ["EUR", "a\x00b", "pay-00000003"]
    assert candidates(texts) == [1]


def test_when_a_value_hides_in_readable_base64_then_its_string_is_scanned():
    hidden = base64.b64encode(b"card 4111 1111 1111 1111").decode()
    texts = ["description of a basket", hidden, "EUR"]
    assert candidates(texts) == [1]
    assert [i for i, _ in scan_each(texts, unbounded())] == [1]


def test_when_skipped_strings_exceed_the_character_budget_then_the_budget_still_counts_them():
    budget = Budget(max_seconds=None, max_chars=10)
    with pytest.raises(Exception, match="more than 10 characters"):
        scan_each(["EUR", "retail", "Berlin"], budget)
