"""Direct calls into compiled google-re2 patterns, for the scan loop.

The ``re2`` module's ``search`` builds a generator, a match object and a group tuple on every call,
which costs more than the search itself on the short strings of an event. The views are ASCII bytes
already, so these call the compiled program straight away and return plain offsets.
``tests/unit/test_detection_rx.py`` checks they agree with the wrapper.
"""

from __future__ import annotations

import re2

_UNANCHORED = re2._Anchor.UNANCHORED
_START = re2._Anchor.ANCHOR_START
_BOTH = re2._Anchor.ANCHOR_BOTH


def search(pattern: re2._Regexp, data: bytes, pos: int = 0, endpos: int | None = None) -> tuple[int, int] | None:
    """The span of the first match in ``data[pos:endpos]``, like ``pattern.search(data, pos, endpos).span()``."""
    end = len(data) if endpos is None else max(0, min(endpos, len(data)))
    pos = max(0, min(pos, len(data)))  # clamped like the wrapper's
    if pos > end:
        return None
    span = pattern._regexp.Match(_UNANCHORED, data, pos, end)[0]
    return None if span[0] < 0 else span


def found(pattern: re2._Regexp, data: bytes) -> bool:
    """Does ``pattern`` occur anywhere in ``data``?"""
    return pattern._regexp.Match(_UNANCHORED, data, 0, len(data))[0][0] >= 0


def match_end(pattern: re2._Regexp, data: bytes, pos: int) -> int | None:
    """Where a match anchored at ``pos`` ends, like ``pattern.match(data, pos).end()``."""
    pos = max(0, min(pos, len(data)))
    end = pattern._regexp.Match(_START, data, pos, len(data))[0][1]
    return None if end < 0 else end


def fullmatch(pattern: re2._Regexp, data: bytes) -> bool:
    """Does ``pattern`` match all of ``data``?"""
    return pattern._regexp.Match(_BOTH, data, 0, len(data))[0][0] >= 0
