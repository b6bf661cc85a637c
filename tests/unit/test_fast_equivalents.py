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
@given(TEXTS)
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
