"""The detection view of a string: evasions undone, every character mapped back to the original.

Detectors never look at the raw string. They look at an ASCII *view* in which:

* compatibility forms are folded (NFKC/NFKD: fullwidth, circled, superscript, mathematical digits);
* decimal digits of any script become ASCII digits (Arabic-Indic, Devanagari, Thai, ...);
* zero-width and other format characters, soft hyphens, combining marks and controls are removed;
* dashes of every kind become ``-``, spaces of every kind a space, middle dots and bullets a dot;
* common Cyrillic and Greek look-alikes of Latin letters become those letters (``е`` -> ``e``);
* any other non-ASCII letter becomes ``x`` and any other symbol a space, so the view stays ASCII.

Keeping the view ASCII is what makes one ``re2`` pass over bytes possible: the Python wrapper
re-encodes ``str`` input on every call, which turns position-based searching quadratic.

:func:`digit_runs` then finds digits separated by at most three spaces, dots, dashes, slashes or line
breaks, and collapses each run into its digits, remembering where each separator-delimited group sits.
:meth:`Normalized.to_original` maps a view span back to the original string, so the original span is
masked, including any zero-width characters inside it.
"""

from __future__ import annotations

import unicodedata
from array import array
from dataclasses import dataclass, field
from functools import lru_cache

import re2

__all__ = ["DigitGroup", "DigitRun", "Normalized", "digit_runs", "fold_char", "normalize"]

_NON_ASCII = re2.compile(r"[^\x00-\x7f]+")
# A digit run: digits joined by at most three separators, so a gap of four or more splits it.
_DIGIT_RUN = re2.compile(rb"[0-9](?:[ \t\r\n./\\-]{0,3}[0-9])*")
_SEPARATORS_TO_SPACE = bytes.maketrans(b"\t\r\n./\\-", b"       ")
_ASCII_DIGITS = b"0123456789"

_DROPPED_CATEGORIES = frozenset({"Cf", "Cc", "Cs", "Co", "Cn", "Mn", "Me"})
_SPACE_CATEGORIES = frozenset({"Zs", "Zl", "Zp"})
_DOTS = frozenset("\u00b7\u2022\u2219\u22c5\u30fb\u2024\u2027\u2981\u25cf")
_SLASHES = frozenset("\u2044\u2215\u29f8")

# The Cyrillic and Greek letters that render like Latin ones in common fonts (after Unicode's
# confusables.txt, restricted to the unambiguous ones). Folding them lets ``јоhn@ехаmple.com`` and a
# Cyrillic ``DЕ`` IBAN country code match like their Latin originals.
_CONFUSABLES = {
    **dict(zip("аеорсухіјѕԁһӏԛԝӑӓёї", "aeopcyxijsdhlqwaaei")),
    **dict(zip("АВЕКМНОРСТУХІЈЅԀԌҮ", "ABEKMHOPCTYXIJSDGY")),
    **dict(zip("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "ABEZHIKMNOPTYX")),
    **dict(zip("οινκραυχτ", "oivkpauxt")),
    # Lowercase forms that look like Latin small capitals: a lowercased homoglyph stays caught.
    **dict(zip("ктнвмп", "kthbmn")),
    "ı": "i",
    "ɡ": "g",
    "ℓ": "l",
    "օ": "o",
    "ս": "u",
}


# Invisible "letters" (Hangul fillers) that render as nothing, like the zero-width format characters.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _fold_simple(ch: str) -> str:
    if ch.isascii():
        return ch
    if ch in _INVISIBLE:
        return ""
    if ch in _CONFUSABLES:
        return _CONFUSABLES[ch]
    category = unicodedata.category(ch)
    if category in _DROPPED_CATEGORIES:
        return ""
    digit = unicodedata.decimal(ch, None)
    if digit is not None:
        return str(digit)
    if category == "Pd" or ch == "\u2212":
        return "-"
    if category in _SPACE_CATEGORIES:
        return " "
    if ch in _DOTS:
        return "."
    if ch in _SLASHES:
        return "/"
    return "x" if category[0] in "LN" or category == "Mc" else " "


@lru_cache(maxsize=8192)
def fold_char(ch: str) -> str:
    """The ASCII the view holds for one non-ASCII character (possibly empty or several chars)."""
    if ch in _CONFUSABLES:
        return _CONFUSABLES[ch]
    if unicodedata.category(ch) in _DROPPED_CATEGORIES:
        return ""
    # NFKD rather than NFKC: it also splits accents off letters, and the marks are then dropped.
    return "".join(_fold_simple(c) for c in unicodedata.normalize("NFKD", ch))


class Normalized:
    """The ASCII detection view of ``original`` and, unless it is the identity, the offset map.

    A plain slotted class rather than a frozen dataclass: one is built per string scanned, and a
    frozen dataclass's ``__init__`` costs several times more.
    """

    __slots__ = ("original", "text", "data", "starts", "ends")

    def __init__(self, original: str, text: str, data: bytes, starts: array | None = None,
                 ends: array | None = None) -> None:
        self.original = original
        self.text = text
        self.data = data  # ``text`` as ASCII bytes, what the re2 patterns search
        self.starts = starts  # original index where view char i comes from; None for the identity
        self.ends = ends  # original index just past it

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """The original span covering view span [start, end)."""
        if self.starts is None:
            return start, end
        if end <= start:
            index = self.starts[start] if start < len(self.starts) else len(self.original)
            return index, index
        return self.starts[start], self.ends[end - 1]


def normalize(text: str) -> Normalized:
    """Build the detection view of ``text`` (see the module docstring); linear in ``len(text)``."""
    if text.isascii():
        return Normalized(text, text, text.encode("ascii"))  # nothing to fold, and no offset map needed
    out: list[str] = []
    starts, ends = array("q"), array("q")
    pos = 0
    for match in _NON_ASCII.finditer(text):
        begin, stop = match.span()
        if begin > pos:
            out.append(text[pos:begin])
            starts.extend(range(pos, begin))
            ends.extend(range(pos + 1, begin + 1))
        for i in range(begin, stop):
            folded = fold_char(text[i])
            if folded:
                out.append(folded)
                starts.extend([i] * len(folded))
                ends.extend([i + 1] * len(folded))
        pos = stop
    if pos < len(text):
        out.append(text[pos:])
        starts.extend(range(pos, len(text)))
        ends.extend(range(pos + 1, len(text) + 1))
    view = "".join(out)
    return Normalized(text, view, view.encode("ascii"), starts, ends)


class DigitGroup:
    """Consecutive digits in the view: ``digits[first:first+len]`` of its run, at view [start, end)."""

    __slots__ = ("first", "start", "end")

    def __init__(self, first: int, start: int, end: int) -> None:
        self.first = first
        self.start = start
        self.end = end

    def __repr__(self) -> str:
        return f"DigitGroup(first={self.first}, start={self.start}, end={self.end})"


@dataclass(slots=True)
class DigitRun:
    """Digits joined by short separators, collapsed: ``"4111 1111-1111.1111"`` -> ``"4111111111111111"``."""

    start: int
    end: int
    digits: str
    groups: list[DigitGroup]
    group_ending_at: dict[int, int] = field(default_factory=dict)  # digit index -> group index

    def last_group(self, first_group: int, length: int) -> int | None:
        """The group where ``length`` digits from the start of ``first_group`` end, if one does."""
        return self.group_ending_at.get(self.groups[first_group].first + length)

    def uniformly_grouped(self, data: bytes) -> bool:
        """Same separator and same group size throughout (the last group may be shorter), like
        ``9400 1000 0000 0000 0000 00``: a slice of such a run is part of one longer number."""
        groups = self.groups
        if len(groups) < 3:
            return False
        size = groups[0].end - groups[0].start
        separator = data[groups[0].end : groups[1].start]
        for left, right in zip(groups, groups[1:]):
            if left.end - left.start != size or data[left.end : right.start] != separator:
                return False
        return groups[-1].end - groups[-1].start <= size


@lru_cache(maxsize=8)
def _long_runs(min_digits: int) -> re2._Regexp:
    """:data:`_DIGIT_RUN` for runs of ``min_digits`` digits or more. A search from a run's end finds
    the next such run whole: it starts at a run's first digit (from there a run reaches every digit
    it holds) and, greedy, ends at the run's last, so shorter runs are passed over inside RE2
    instead of being matched one by one and dropped here."""
    if not 1 < min_digits <= 1000:  # RE2 repeats at most 1,000 times
        return _DIGIT_RUN
    return re2.compile(rb"[0-9](?:[ \t\r\n./\\-]{0,3}[0-9]){%d,}" % (min_digits - 1))


def digit_runs(data: bytes, min_digits: int = 1) -> list[DigitRun]:
    """Every digit run of the (ASCII) view with at least ``min_digits`` digits."""
    runs = []
    # The compiled program directly: the re2 wrapper's finditer costs microseconds per match.
    program, anchor, pos, size = _long_runs(min_digits)._regexp, re2._Anchor.UNANCHORED, 0, len(data)
    # Digits from ``pos`` on: once fewer than ``min_digits`` are left, no run worth keeping is, and
    # the search that would find none (an RE2 call) is skipped. Each byte is counted once.
    left = size - len(data.translate(None, _ASCII_DIGITS))
    while pos < size and left >= min_digits:
        start, end = program.Match(anchor, data, pos, size)[0]
        if start < 0:
            break
        left -= end - pos - len(data[pos:end].translate(None, _ASCII_DIGITS))
        pos = end  # a run is never empty, so this moves on
        if end - start < min_digits:
            continue
        chunk = data[start:end]
        if chunk.isdigit():  # the usual run (a bare card number): one group, nothing to split
            count = end - start
            runs.append(DigitRun(start, end, chunk.decode(), [DigitGroup(0, start, end)], {count: 0}))
            continue
        # Every separator is one byte, so splitting on them gives exact positions without a
        # regex match object per group (the re2 wrapper costs microseconds per match).
        groups, parts, count, pos = [], [], 0, start
        for part in chunk.translate(_SEPARATORS_TO_SPACE).split(b" "):
            if part:
                groups.append(DigitGroup(count, pos, pos + len(part)))
                parts.append(part)
                count += len(part)
            pos += len(part) + 1
        if count < min_digits:
            continue
        ending = {grp.first + grp.end - grp.start: i for i, grp in enumerate(groups)}
        runs.append(DigitRun(start, end, b"".join(parts).decode(), groups, ending))
    return runs
