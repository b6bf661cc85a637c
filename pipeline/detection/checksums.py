"""Small, fast checks shared by detectors and by test-value generators."""

from __future__ import annotations

# (prefix digits, low, high, lengths) from the issuers' published ranges.
_CARD_RANGES: tuple[tuple[int, int, int, frozenset[int]], ...] = (
    (1, 4, 4, frozenset({13, 16, 19})),  # Visa
    (2, 51, 55, frozenset({16})),  # Mastercard
    (4, 2221, 2720, frozenset({16})),  # Mastercard 2-series
    (2, 34, 34, frozenset({15})),  # American Express
    (2, 37, 37, frozenset({15})),
    (3, 300, 305, frozenset(range(14, 20))),  # Diners Club
    (2, 36, 36, frozenset(range(14, 20))),
    (2, 38, 39, frozenset(range(14, 20))),
    (4, 3528, 3589, frozenset(range(16, 20))),  # JCB
    (4, 2200, 2204, frozenset(range(16, 20))),  # Mir
    (2, 50, 50, frozenset(range(13, 20))),  # Maestro
    (2, 56, 69, frozenset(range(13, 20))),  # Maestro, Discover, UnionPay, RuPay
)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by payment cards and Swedish personal numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_issuer_ok(digits: str) -> bool:
    """Does ``digits`` start with a known issuer prefix that issues cards of this length?"""
    if digits[0] not in "23456":
        return False
    n = len(digits)
    for width, low, high, lengths in _CARD_RANGES:
        if n in lengths and low <= int(digits[:width]) <= high:
            return True
    return False


def is_card(digits: str) -> bool:
    return card_issuer_ok(digits) and luhn_valid(digits)


def iban_mod97_ok(compact: str) -> bool:
    """ISO 13616 check: move the first four characters to the end, letters to numbers, mod 97 == 1."""
    rearranged = compact[4:] + compact[:4]
    total = 0
    for ch in rearranged:
        value = ord(ch) - 48 if ch <= "9" else ord(ch) - 55
        total = (total * (100 if value > 9 else 10) + value) % 97
    return total == 1
