"""Payment card numbers: issuer range and length, then Luhn."""

from __future__ import annotations

from pipeline.detection.base import DigitDetector, ScanContext
from pipeline.detection.checksums import is_card

_HEX_LETTERS = frozenset(b"abcdefABCDEF")


class CardDetector(DigitDetector):
    name = "card"
    lengths = tuple(range(13, 20))

    def confirm(self, ctx: ScanContext, digits: str, start: int, end: int) -> bool:
        if not is_card(digits):
            return False
        # Inside a hex digest both neighbours are hex letters; a real card is never written that way.
        data = ctx.data
        inside_hex = start > 0 and end < len(data) and data[start - 1] in _HEX_LETTERS and data[end] in _HEX_LETTERS
        return not inside_hex
