"""Payment card numbers: issuer range and length, then Luhn."""

from __future__ import annotations

from pipeline.detection.base import DigitDetector, ScanContext, Window
from pipeline.detection.checksums import is_card

_HEX_LETTERS = frozenset(b"abcdefABCDEF")


class CardDetector(DigitDetector):
    name = "card"
    lengths = tuple(range(13, 20))

    def confirm(self, ctx: ScanContext, digits: str, window: Window) -> bool:
        if not is_card(digits):
            return False
        # A slice of a longer, evenly grouped number (a USPS tracking number) is not a card; a card
        # followed by its CVV (3-4 more digits) still is.
        if not window.whole_run and window.run.uniformly_grouped(ctx.data):
            if window.first_group > 0 or window.extra_digits() >= 5:
                return False
        # Inside a hex digest both neighbours are hex letters; a real card is never written that way.
        data, start, end = ctx.data, window.start, window.end
        return not (start > 0 and end < len(data) and data[start - 1] in _HEX_LETTERS and data[end] in _HEX_LETTERS)
