"""A fast path for the commonest finding: a string whose only digits are one bare card number.

``Customer asked to refund to card 2221351819093788 and confirm by mail`` is the typical flagged
string of a payment event. The general engine spends tens of microseconds on it (gates, digit runs
and windows, the phone detector, the base64 decoder), all to report the one card span. Here a few
checks, each a necessary condition of some way the engine could report anything else, settle it:

* the text is ASCII, so its view is itself and view offsets are original offsets;
* its only digits are one block of 13-19 ASCII digits, with a space or the string's edge on each
  side: the view's only digit run, of one group, so the only digit window is the whole block;
* the card detector comes first among the digit detectors of that length and confirms the block
  (a lone group between spaces is a whole run with no hex letter beside it, so ``confirm`` is
  :func:`is_card`), so no later digit detector is asked;
* no pattern detector's pattern matches the view (one RE2 set pass), except the phone pattern,
  which matches the block itself and is ruled out by ``PhoneDetector.could_confirm`` (its view test
  is the last pattern of the same set, so the one pass answers both);
* no ``\\`` (JSON documents, ``\\u`` escapes) and no ``%`` (URL-encoding), so of the decoders only
  base64 is left (the block itself is a base64 run, and may decode to readable text): the caller
  adds its findings the way the general path does.

Then ``scan`` would find the card's span and whatever base64 tokens hold, nothing else. Whenever a
check fails, the caller takes the general path, so a near miss (``+ 2221...``, two digit blocks,
letters glued to the run, a non-ASCII digit) costs a few microseconds more, never a different result.
``tests/unit/test_detection_bare_card.py`` checks the fast path against the general one.
"""

from __future__ import annotations

import re2

from pipeline.detection.base import DigitDetector, PatternDetector
from pipeline.detection.checksums import is_card
from pipeline.detection.phone import PhoneDetector

CARD = "card"
# Digits -> "0", a space -> " ", anything else -> "x": the shape of a text in one translate.
_SHAPE = bytes.maketrans(bytes(range(256)), bytes(48 if 48 <= b <= 57 else 32 if b == 32 else 120 for b in range(256)))


def digit_block(data: bytes) -> tuple[int, int] | None:
    """Where the only digits of ``data`` are, when they are one block with a space or the edge on
    each side; else None."""
    shape = data.translate(_SHAPE)
    start = shape.find(b"0")
    if start < 0:
        return None
    end = start + shape.count(b"0")
    if shape.count(b"0", start, end) != end - start:  # digits outside the block
        return None
    if (start > 0 and shape[start - 1] != 32) or (end < len(shape) and shape[end] != 32):
        return None
    return start, end


class BareCard:
    """The fast path, set up once from the engine's detectors (see the module docstring)."""

    def __init__(self, by_length: dict[int, list[DigitDetector]], pattern: list[PatternDetector]) -> None:
        # Block lengths where the card detector is asked first, so its hit ends the window.
        self.lengths = frozenset(n for n, ds in by_length.items() if ds[0].name == CARD)
        # One RE2 set of every pattern detector's pattern, then the phone's view test (the first half
        # of could_confirm), so one pass answers both. Its own set: the engine's set, which scans
        # views of any length, stays without the phone's context words (megabyte views ran slower).
        prefilter = re2.Set.SearchSet()
        for detector in pattern:
            prefilter.Add(detector.pattern.pattern)
        prefilter.Add(PhoneDetector.view_pattern)
        prefilter.Compile()
        self.prefilter = prefilter._set  # the compiled set itself: the wrapper only adds a call
        # Index of the phone pattern; every other detector's pattern must not match at all.
        self.phone = next(i for i, d in enumerate(pattern) if isinstance(d, PhoneDetector))
        self.phone_view = len(pattern)

    def find(self, text: str, hint: str | None) -> tuple[str, int, int] | None:
        """``("card", start, end)`` when, besides base64 tokens, it is the only thing
        ``scan(text, hint=hint)`` would find; else None (not known: the general path decides)."""
        if not text.isascii():
            return None
        data = text.encode("ascii")
        block = digit_block(data)
        if block is None:
            return None
        start, end = block
        if end - start not in self.lengths or not is_card(text[start:end]):
            return None
        if b"\\" in data or b"%" in data:
            return None
        matched = self.prefilter.Match(data) or ()
        if any(index != self.phone and index != self.phone_view for index in matched):
            return None
        # PhoneDetector.could_confirm, its view half answered by the same set pass; the hint as
        # ScanContext's bytes, as the phone detector would see them.
        if self.phone_view in matched or PhoneDetector.hint_could_confirm((hint or "").encode("ascii", "replace")):
            return None
        return CARD, start, end
