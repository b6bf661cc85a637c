"""The table-driven Luhn and issuer checks agree with their per-character definitions."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from pipeline.detection import checksums


def test_fast_luhn_and_issuer_agree_with_the_loops_on_random_digit_strings():
    rnd = random.Random(7)
    for _ in range(50_000):
        digits = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 22)))
        if rnd.random() < 0.5:
            digits = rnd.choice("23456") + digits
        assert checksums.luhn_valid(digits) == checksums._luhn_loop(digits), digits
        assert checksums.card_issuer_ok(digits) == checksums._card_issuer_loop(digits), digits


def test_every_issuer_range_edge_is_kept():
    for width, low, high, lengths in checksums._CARD_RANGES:
        for n in lengths:
            for prefix in (low, high, low - 1, high + 1):
                digits = str(prefix).rjust(width, "0")[:width] + "0" * (n - width)
                assert checksums.card_issuer_ok(digits) == checksums._card_issuer_loop(digits), digits


@given(st.text(alphabet="0123456789", min_size=1, max_size=40))
def test_fast_checks_agree_on_arbitrary_digit_strings(digits):
    assert checksums.luhn_valid(digits) == checksums._luhn_loop(digits)
    assert checksums.card_issuer_ok(digits) == checksums._card_issuer_loop(digits)
