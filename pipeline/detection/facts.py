"""Cheap facts about a view that decide which detectors and decoders could possibly confirm anything.

Most strings in an event (``EUR``, ``retail``, ``SKU-12345``) cannot hold any personal data a detector
would confirm, and finding that out must cost far less than running the detectors. A handful of C-level
``bytes`` operations count digits and letters and note a few marker bytes; every detector declares, in
its :class:`Gate`, what its pattern cannot match without, and the engine skips the closed ones. The
gates are necessary conditions derived from each pattern (see each detector), never heuristics:
``tests/unit/test_detection_gates.py`` checks that a closed gate never hides a finding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

_DIGITS = b"0123456789"
_LETTERS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_BASE64 = _LETTERS + _DIGITS + b"+/_-"
# Base64 alphabet (standard and URL-safe) -> "A", anything else -> " ": a run of 8 "A" is a candidate.
BASE64_RUNS = bytes.maketrans(_BASE64 + bytes(b for b in range(256) if b not in _BASE64),
                               b"A" * len(_BASE64) + b" " * (256 - len(_BASE64)))
MIN_BASE64 = 8  # the shortest base64 token worth decoding (pipeline.detection.encoded)


def _all_but(keep: bytes) -> bytes:
    return bytes(b for b in range(256) if b not in keep)


@dataclass(frozen=True, slots=True)
class Gate:
    """What a detector's pattern cannot match without: at least ``digits`` digits, ``letters``
    letters and ``alnum`` letters or digits in the view, (if ``any_of`` is set) one of its bytes and
    (if ``check`` is set) ``check(view bytes)`` true."""

    digits: int = 0
    letters: int = 0
    alnum: int = 0
    any_of: bytes = b""
    check: Callable[[bytes], bool] | None = None

    def delete_table(self) -> bytes | None:
        """Bytes to delete so that what remains of a view is the ``any_of`` bytes in it."""
        return _all_but(self.any_of) if self.any_of else None


# Digits -> "0", the separators a digit run may hold -> " ", anything else -> "x" (pipeline.normalize).
_RUN_CLASSES = bytes.maketrans(
    bytes(range(256)),
    bytes(48 if 48 <= b <= 57 else 32 if b in b" \t\r\n./\\-" else 120 for b in range(256)),
)


# Digits -> "0", letters -> "a", anything else -> " ": both counts from one translate.
_COUNT_CLASSES = bytes.maketrans(
    bytes(range(256)), bytes(48 if b in _DIGITS else 97 if b in _LETTERS else 32 for b in range(256))
)


class Facts:
    """Digit and letter counts of one view, plus two lazier checks on its runs."""

    __slots__ = ("data", "digits", "letters")

    def __init__(self, data: bytes) -> None:
        self.data = data
        classes = data.translate(_COUNT_CLASSES)
        self.digits = classes.count(b"0")
        self.letters = classes.count(b"a")

    def digit_run(self, length: int) -> bool:
        """Is there a digit run (see :func:`pipeline.normalize.digit_runs`) of ``length`` digits or more?

        Runs are digits joined by at most three separators: four separators in a row become a break
        ("x"), the remaining separators are dropped, and a run is then a plain block of "0"."""
        if self.digits < length:
            return False
        blocks = self.data.translate(_RUN_CLASSES).replace(b"    ", b"x").replace(b" ", b"")
        return b"0" * length in blocks

    def base64_run(self) -> bool:
        """Is there a run of at least :data:`MIN_BASE64` base64-alphabet bytes?"""
        return len(self.data) >= MIN_BASE64 and b"A" * MIN_BASE64 in self.data.translate(BASE64_RUNS)
