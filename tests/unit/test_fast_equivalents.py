"""Faster forms of small detection steps give what the plain forms give.

Each test compares a rewritten step with the straightforward definition it replaced, on hypothesis
texts rich in the bytes the step looks at.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.detection.engine import _all
from pipeline.detection.facts import Facts
from pipeline.normalize import digit_runs, normalize

SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALPHABET = "0123456789abcdefxyzABXYZ .-/:@%\\+=_()[]<>{}\"'#\n\t\0u"
TEXTS = st.text(alphabet=ALPHABET, max_size=120) | st.text(max_size=60)
RUNS = st.text(alphabet="0123456789 .-/\\\n\tx", max_size=120)  # digit runs of every length and gap


def _plain(text: str) -> bytes:
    return normalize(text).data


def _shown(runs: list) -> list:
    return [(r.start, r.end, r.digits, [(g.first, g.start, g.end) for g in r.groups], r.group_ending_at) for r in runs]


@SETTINGS
@given(TEXTS | RUNS, st.integers(1, 20))
def test_digit_runs_with_a_minimum_are_the_long_runs_of_all_runs(text: str, minimum: int):
    data = _plain(text)
    expected = [r for r in digit_runs(data) if len(r.digits) >= minimum]
    assert _shown(digit_runs(data, minimum)) == _shown(expected)


@SETTINGS
@given(TEXTS)
def test_facts_count_digits_and_letters_like_deleting_them(text: str):
    data = _plain(text)
    facts = Facts(data)
    assert facts.digits == len(data) - len(data.translate(None, b"0123456789"))
    letters = bytes(range(65, 91)) + bytes(range(97, 123))
    assert facts.letters == len(data) - len(data.translate(None, letters))


@SETTINGS
@given(TEXTS | TEXTS.map(lambda t: t * 20))  # long views too: their markers are found another way
def test_open_gates_are_those_whose_marker_bytes_the_view_holds(text: str):
    detectors, data = _all(), _plain(text)
    facts = Facts(data)
    expected = []
    for d in sorted(detectors.pattern, key=lambda d: d.gate.digits):
        gate = d.gate
        if (facts.digits >= gate.digits and facts.letters >= gate.letters
                and facts.letters + facts.digits >= gate.alnum
                and (not gate.any_of or any(b in data for b in gate.any_of))
                and (gate.check is None or gate.check(data))):
            expected.append(d)
    if len(expected) > 1:
        matched = {d.name for d in detectors.pattern if d.pattern.search(data)}
        expected = [d for d in expected if d.name in matched]
    assert [d.name for d in detectors.open_patterns(facts)] == [d.name for d in expected]


_KEYS = st.sampled_from(["a", "b", "c", "0", ""])
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=3),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3), max_leaves=12)


@SETTINGS
@given(_JSON, st.lists(_KEYS, min_size=1, max_size=4))
def test_a_path_of_names_is_looked_up_like_any_path(doc, names):
    from pipeline.rules import _lookup_names, lookup

    assert _lookup_names(doc, tuple(names)) is lookup(doc, tuple(names)) or \
        _lookup_names(doc, tuple(names)) == lookup(doc, tuple(names))


def test_remembered_clean_texts_leave_the_candidates_unchanged():
    from pipeline.detection import record
    from tests.unit import detection_corpus

    record._CLEAN.clear()
    groups = [[text for text, _ in group] for group in detection_corpus.groups()[:1500]]  # events, then others
    for _ in range(2):  # cold, then with every clean text of the corpus remembered
        for texts in groups:
            assert record.candidates(texts) == record._marked_joined(texts)
    assert record._CLEAN


_POOL = st.sampled_from(["EUR", "retail", "4111 1111 1111 1111", "a\0b", "pay-00000003", "SGVsbG8gd29ybGQ=",
                         "x%41", "Mozilla/5.0 (X11)", "", "+49 30 1234567", "::1", "abc\\u0031", "DE89370400440532013000"])


@SETTINGS
@given(st.lists(st.lists(_POOL | TEXTS, max_size=8), max_size=6))
def test_candidates_with_remembered_texts_are_those_of_one_full_pass(records):
    from pipeline.detection import record

    for texts in records:
        assert record.candidates(texts) == record._marked_joined(texts)
        for text in texts:  # alone: as the pre-filter sees the few texts a warm record has left
            assert record._view_marked(text) == bool(record._marked_joined([text]))


@SETTINGS
@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZaz -.", max_size=40) | st.text(max_size=20))
def test_the_iban_check_spells_the_number_like_the_per_character_loop(compact: str):
    from pipeline.detection.checksums import _iban_mod97_loop, iban_mod97_ok

    assert iban_mod97_ok(compact) == _iban_mod97_loop(compact[4:] + compact[:4])


def test_valid_ibans_pass_the_check():
    import random

    from pipeline.detection.checksums import iban_mod97_ok
    from pipeline.generator import iban

    rng = random.Random(7)
    for country in ("DE", "NL", "IT", "FR", "AT", "BE"):
        for _ in range(50):
            value = iban(rng, country)
            assert iban_mod97_ok(value)
            assert not iban_mod97_ok(value[:2] + f"{(int(value[2:4]) + 1) % 100:02d}" + value[4:])


_NUMBERS = st.integers(-5, 5) | st.floats(allow_nan=True, width=16)


@SETTINGS
@given(_NUMBERS | st.booleans() | st.none() | st.text(max_size=2), st.sampled_from([">", ">=", "<", "<="]),
       _NUMBERS.filter(lambda x: x == x))
def test_an_order_condition_compares_like_the_table_of_all_four(value, op, target):
    import math

    from pipeline.rules import _compare
    from schemas.policy import Condition

    cond = Condition(field="a", op=op, value=target)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        expected = True
    else:
        expected = {">": value > target, ">=": value >= target, "<": value < target, "<=": value <= target}[op]
    assert _compare(value, cond) == expected


@SETTINGS
@given(st.text(alphabet="0123456789 ax\0\n-", max_size=40) | st.text(alphabet="ab ", max_size=8).map(lambda t: t + "4111111111111111" + t))
def test_the_digit_block_is_what_the_shape_regex_finds(text: str):
    import re2

    from pipeline.detection.bare_card import digit_block

    data = text.encode()
    match = re2.fullmatch(rb"(?:[^0-9]* )?([0-9]+)(?: [^0-9]*)?", data)
    assert digit_block(data) == (match.span(1) if match else None)


def test_a_view_alone_is_marked_as_in_the_joined_buffer():
    from pipeline.detection import record
    from tests.unit import detection_corpus

    for group in detection_corpus.groups():
        texts = [text for text, _ in group]
        joined = set(record._marked_joined(texts))
        assert [i for i, text in enumerate(texts) if record._view_marked(text)] == sorted(joined)


@SETTINGS
@given(st.sampled_from([10, 12]).flatmap(lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n))
       | st.from_regex(r"\A(19|20)?[0-9]{2}(0[0-9]|1[0-3])(0[0-9]|[123][0-9])[0-9]{4}\Z"))
def test_personnummer_plausibility_never_turns_down_a_valid_number(digits: str):
    # The date pre-check runs before the keyword searches: it must only ever reject what stdnum does.
    from pipeline.detection.se_personnummer import SePersonnummerDetector, _valid

    if not SePersonnummerDetector().plausible(digits):
        assert not _valid(digits)


def test_personnummer_plausibility_accepts_every_valid_date_and_turns_down_others():
    from pipeline.detection.se_personnummer import SePersonnummerDetector

    detector = SePersonnummerDetector()
    for month in range(100):
        for day in range(100):
            expected = 1 <= month <= 12 and 1 <= day <= 31
            assert detector.plausible(f"20{month:02d}{day:02d}1234") is expected
            assert detector.plausible(f"1990{month:02d}{day:02d}1234") is expected


@SETTINGS
@given(TEXTS | RUNS | RUNS.map(lambda t: t * 5), st.integers(1, 20))
def test_digit_runs_stop_early_only_when_no_long_run_is_left(text: str, minimum: int):
    # digit_runs skips its last search once too few digits remain; the plain search finds the same runs.
    from pipeline.normalize import _DIGIT_RUN

    data = _plain(text)
    plain = [(m.start(), m.end()) for m in _DIGIT_RUN.finditer(data)
             if len(data[m.start():m.end()].translate(None, b" \t\r\n./\\-")) >= minimum]
    assert [(r.start, r.end) for r in digit_runs(data, minimum)] == plain


@SETTINGS
@given(TEXTS)
def test_one_view_looked_at_alone_is_blobbed_like_the_joined_buffer(text: str):
    from pipeline.detection.record import _marked_joined, _view_marked

    assert _view_marked(text) == bool(_marked_joined((text,)))
