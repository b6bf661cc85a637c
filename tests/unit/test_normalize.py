"""The detection view: folding, removals, digit runs and the map back to original offsets."""

from __future__ import annotations

import pytest

from pipeline.normalize import digit_runs, normalize


@pytest.mark.parametrize(
    ("raw", "view"),
    [
        ("４１１１", "4111"),  # fullwidth
        ("٤١١١", "4111"),  # Arabic-Indic
        ("४१११", "4111"),  # Devanagari
        ("𝟒𝟏𝟏𝟏", "4111"),  # mathematical bold
        ("4\u200b1\u200c1\u200d1\u2060\ufeff", "4111"),  # zero-width
        ("41\u00ad11", "4111"),  # soft hyphen
        ("4\u03011", "41"),  # combining mark
        ("41\u201311\u00a011", "41-11 11"),  # en dash, no-break space
        ("јоhn@ехаmple.com", "john@example.com"),  # Cyrillic look-alikes
        ("DΕ89", "DE89"),  # Greek capital epsilon
        ("josé", "jose"),
        ("中文", "xx"),
        ("plain", "plain"),
    ],
)
def test_when_text_has_an_evasion_then_the_view_undoes_it(raw, view):
    assert normalize(raw).text == view


def test_when_view_span_is_mapped_back_then_it_covers_the_original_characters():
    raw = "card: ４\u200b111 1111"
    view = normalize(raw)
    start = view.text.index("4")
    assert view.to_original(start, len(view.text)) == (raw.index("４"), len(raw))


def test_when_one_character_expands_then_both_view_characters_map_to_it():
    view = normalize("a⑩b")
    assert view.text == "a10b" and view.to_original(1, 3) == (1, 2)


@pytest.mark.parametrize(
    ("raw", "digits"),
    [
        ("4111 1111-1111.1111", ["4111111111111111"]),
        ("4111/1111\n1111\r\n1111", ["4111111111111111"]),
        ("4 1 1 1 - 1 1", ["411111"]),
        ("12    34", ["12", "34"]),  # four separators split a run
        ("a12b34", ["12", "34"]),
    ],
)
def test_when_digits_are_separated_then_runs_collapse_them(raw, digits):
    assert [run.digits for run in digit_runs(normalize(raw).data)] == digits
