"""The direct re2 calls agree with the ``re2`` wrapper they replace, for every detector pattern."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.detection import rx
from pipeline.detection.engine import _all
from pipeline.detection.phone import _NANP, _RUN_REST
from pipeline.normalize import _DIGIT_RUN, digit_runs

PATTERNS = [d.pattern for d in _all().pattern] + [_NANP, _RUN_REST, _DIGIT_RUN]
DATA = st.text(alphabet="0123456789 .-/()+:@abxyzAB[]", max_size=60).map(str.encode)


@settings(max_examples=300, deadline=None)
@given(index=st.integers(0, len(PATTERNS) - 1), data=DATA, pos=st.integers(0, 70))
def test_when_a_pattern_is_searched_directly_then_it_agrees_with_the_wrapper(index, data, pos):
    pattern = PATTERNS[index]
    match = pattern.search(data, pos)
    assert rx.search(pattern, data, pos) == (match.span() if match else None)
    assert rx.found(pattern, data) == (pattern.search(data) is not None)
    anchored = pattern.match(data, pos)
    assert rx.match_end(pattern, data, pos) == (anchored.end() if anchored else None)
    assert rx.fullmatch(pattern, data) == (pattern.fullmatch(data) is not None)


@settings(max_examples=300, deadline=None)
@given(data=DATA)
def test_when_digit_runs_are_listed_then_they_are_the_pattern_matches(data):
    assert [(r.start, r.end) for r in digit_runs(data)] == [m.span() for m in _DIGIT_RUN.finditer(data)]
