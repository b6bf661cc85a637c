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


# Luhn's doubled digit (2d, minus 9 past 9) for each ASCII digit, as the ASCII digit it sums to.
_LUHN_DOUBLE = bytes.maketrans(b"0123456789", b"0246813579")


def _luhn_loop(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by payment cards and Swedish personal numbers."""
    if not (digits.isascii() and digits.isdigit()):
        return _luhn_loop(digits)  # anything but ASCII digits: the per-character definition
    # Every other digit from the right doubled through a table, both halves summed in C: the byte
    # values are the digits plus 48 each.
    raw = digits[::-1].encode()
    return (sum(raw[::2]) + sum(raw[1::2].translate(_LUHN_DOUBLE)) - 48 * len(raw)) % 10 == 0


def _issuer_prefixes() -> dict[int, frozenset[str]]:
    """For each card length, every 4-digit prefix that some range of :data:`_CARD_RANGES` admits."""
    out: dict[int, set[str]] = {}
    for width, low, high, lengths in _CARD_RANGES:
        scale = 10 ** (4 - width)
        for n in lengths:
            out.setdefault(n, set()).update(f"{p:04d}" for p in range(low * scale, (high + 1) * scale))
    return {n: frozenset(p) for n, p in out.items()}


_ISSUER_PREFIXES = _issuer_prefixes()


def _card_issuer_loop(digits: str) -> bool:
    if digits[0] not in "23456":
        return False
    n = len(digits)
    for width, low, high, lengths in _CARD_RANGES:
        if n in lengths and low <= int(digits[:width]) <= high:
            return True
    return False


def card_issuer_ok(digits: str) -> bool:
    """Does ``digits`` start with a known issuer prefix that issues cards of this length?"""
    prefixes = _ISSUER_PREFIXES.get(len(digits))
    if prefixes is None:
        return False  # no issuer uses this length (every length in the table is at least 13)
    if digits[:4].isascii() and digits[:4].isdigit():
        return digits[:4] in prefixes  # one set lookup instead of up to twelve int() conversions
    return _card_issuer_loop(digits)


def is_card(digits: str) -> bool:
    return card_issuer_ok(digits) and luhn_valid(digits)


# Each capital letter as its ISO 13616 number (A -> "10" ... Z -> "35").
_LETTER_NUMBERS = {ord(ch): str(value) for value, ch in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 10)}


def iban_mod97_ok(compact: str) -> bool:
    """ISO 13616 check: move the first four characters to the end, letters to numbers, mod 97 == 1."""
    rearranged = compact[4:] + compact[:4]
    if rearranged.isascii() and rearranged.isalnum() and rearranged.upper() == rearranged:
        # Digits and capitals only (what the IBAN detector passes): the number they spell, in C.
        return int(rearranged.translate(_LETTER_NUMBERS)) % 97 == 1
    return _iban_mod97_loop(rearranged)


def _iban_mod97_loop(rearranged: str) -> bool:
    total = 0
    for ch in rearranged:
        value = ord(ch) - 48 if ch <= "9" else ord(ch) - 55
        total = (total * (100 if value > 9 else 10) + value) % 97
    return total == 1
