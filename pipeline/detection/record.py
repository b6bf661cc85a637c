"""Detection over all the strings of one record at once: one pre-filter pass, then ``scan`` where needed.

Most strings of an event (``EUR``, ``pay-00000003``, timestamps, user agents, prose) hold nothing a
detector would confirm, and ``scan`` costs microseconds of Python per call even when its gates are
closed. Here the views of a record's strings are joined into one buffer, each preceded and followed
by a NUL byte, and one RE2 pass of :data:`NEEDS_SCAN` (plus one walk over the base64 runs) marks the
strings that *might* hold a finding. Only those are handed to :func:`pipeline.detection.engine.scan`,
so their spans are exactly what ``scan`` returns; the others are charged to the budget and skipped.

Soundness: every alternative of :data:`NEEDS_SCAN` is a necessary condition of some way ``scan`` can
report a finding (see :func:`_alternatives`), no alternative can match across a NUL (no pattern
class holds one), and a string whose view holds a NUL is always scanned. So a string ``scan`` would
flag is never skipped. ``tests/unit/test_detection_record.py`` checks this with hypothesis and a
differential run against per-string ``scan`` calls.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from itertools import accumulate

import re2

from pipeline.detection import email, es_dni, es_nie, fr_nir, iban, ipv4, it_codice_fiscale
from pipeline.detection.base import DigitDetector, PatternDetector, Span, registry
from pipeline.detection.budget import Budget
from pipeline.detection.encoded import base64_text
from pipeline.detection.engine import scan
from pipeline.detection.facts import BASE64_RUNS
from pipeline.detection.readable import READABLE_START
from pipeline.normalize import normalize

_DIGIT_SEP = rb"[ \t\r\n./\\-]"  # what pipeline.normalize lets a digit run hold
_PHONE_SEP = rb"[ \t\r\n.\-/()]"  # what the phone pattern lets a number hold
# ScanContext.isolated, as bytes around a candidate: not alphanumeric, and a joiner only when no
# alphanumeric is on its far side. The NUL around each view stands for the view's start and end.
_LEFT = rb"(?:[^A-Za-z0-9\-./_#\\]|[^A-Za-z0-9][\-./_#\\])"
_RIGHT = rb"(?:[^A-Za-z0-9\-./_#\\]|[\-./_#\\][^A-Za-z0-9])"
# Pattern detectors whose own pattern is the pre-filter: every finding lies in a match of it.
_OWN_PATTERN = (email.EmailDetector, iban.IbanDetector, ipv4.Ipv4Detector, fr_nir.FrNirCorsicaDetector,
                es_dni.EsDniDetector, es_nie.EsNieDetector, it_codice_fiscale.ItCodiceFiscaleDetector)


def _alternatives() -> list[bytes]:
    """One necessary condition per way ``scan`` can find something, as RE2 patterns over a view."""
    min_digits = min(length for cls in registry().values() if issubclass(cls, DigitDetector)
                     for length in cls.lengths)
    alternatives = [
        # Digit detectors (cards, national ids) confirm windows of runs of at least min_digits digits.
        rb"[0-9](?:" + _DIGIT_SEP + rb"{0,3}[0-9]){" + str(min_digits - 1).encode() + rb"}",
        # Phone: a candidate is 7 or more digits; confirm() wants it to start with "+" or "(", or to
        # be isolated on both sides (it never ends in a separator: the pattern ends with a digit).
        rb"\+ ?[0-9](?:" + _PHONE_SEP + rb"{0,3}[0-9]){6}",
        rb"\([0-9](?:" + _PHONE_SEP + rb"{0,3}[0-9]){6}",
        _LEFT + rb"[0-9](?:" + _PHONE_SEP + rb"{0,3}[0-9]){6,}" + _RIGHT,
        # IPv6: ipaddress accepts a candidate only with "::" or six colons, each before 1-4 hex digits.
        rb"::|(?::[0-9A-Fa-f]{1,4}){6}",
        # Decoders: JSON documents and \u escapes need a backslash, URL-encoding a %xx.
        rb"\\",
        rb"%[0-9A-Fa-f]{2}",
    ]
    alternatives += [cls.pattern.pattern for cls in _OWN_PATTERN]
    covered = {cls.name for cls in _OWN_PATTERN} | {"phone", "ipv6"}
    missing = {name for name, cls in registry().items() if issubclass(cls, PatternDetector)} - covered
    if missing:  # a new pattern detector must be added here, or the pre-filter would skip its findings
        raise RuntimeError(f"the record pre-filter does not cover detectors {sorted(missing)}")
    return alternatives


NEEDS_SCAN = re2.compile(b"|".join(b"(?:" + alt + b")" for alt in _alternatives()))
_PROGRAM, _UNANCHORED = NEEDS_SCAN._regexp, re2._Anchor.UNANCHORED
_PLUS_ONE = (1).__add__  # a view's length and its NUL, added up in C rather than in a generator
_READABLE = READABLE_START._regexp


def _view(text: str) -> bytes:
    """The bytes the pre-filter looks at for ``text``: itself when ASCII, else its normalized view."""
    return text.encode("ascii") if text.isascii() else normalize(text).data


def _blob(texts: Sequence[str]) -> tuple[bytes, list[int]]:
    """The views joined, each after a NUL and the last before one, and where each view's NUL is."""
    joined = "\0".join(texts)
    if joined.isascii():  # the usual case: every view is its text, encoded once for all
        lengths = map(len, texts)
        blob = ("\0" + joined + "\0").encode("ascii")
    else:
        views = [_view(text) for text in texts]
        lengths = map(len, views)
        blob = b"\0" + b"\0".join(views) + b"\0"
    # starts[i]: the NUL before view i; a match starting there or inside view i belongs to view i.
    return blob, [0, *accumulate(map(_PLUS_ONE, lengths))]


# Texts the pre-filter marked nothing in, remembered: many values repeat from event to event (a
# currency, a user agent, a referrer, a canned description), and whether a view is marked depends on
# its own bytes only (no alternative crosses the NUL around it), so a remembered text is left out of
# the buffer. Only unmarked texts are kept, so a lookup can only skip what the pass would skip.
# Bounded: short texts only, emptied when full (unique values such as ids churn through it).
_CLEAN: set[str] = set()
_CLEAN_MAX, _CLEAN_MAX_CHARS = 8192, 512


def candidates(texts: Sequence[str]) -> list[int]:
    """Indices of the texts that might hold a finding (a superset of those ``scan`` flags), ascending."""
    fresh = [i for i, text in enumerate(texts) if text not in _CLEAN]
    if not fresh:
        return []
    subset = [texts[i] for i in fresh]
    marked = _marked(subset)
    flagged = set(marked)
    for j, text in enumerate(subset):
        if j not in flagged and len(text) <= _CLEAN_MAX_CHARS:
            if len(_CLEAN) >= _CLEAN_MAX:
                _CLEAN.clear()
            _CLEAN.add(text)
    return [fresh[j] for j in marked]


# Both passes' patterns in one RE2 set: a DFA-only pass says whether either matches at all, without
# the backward pass RE2 runs to find where a match starts (~2 us a call through the binding even on
# a short buffer). Once most of a record's texts are remembered, a few short ones are left.
_EITHER = re2.Set.SearchSet()
_EITHER.Add(NEEDS_SCAN.pattern)  # index 0
_EITHER.Add(READABLE_START.pattern)  # index 1
_EITHER.Compile()
_EITHER_SET = _EITHER._set
_PER_VIEW_MAX = 8  # more texts than this: one pass over the joined buffer


def _marked(texts: Sequence[str]) -> list[int]:
    """:func:`candidates` without the remembered texts."""
    if len(texts) > _PER_VIEW_MAX:
        return _marked_joined(texts)
    return [i for i, text in enumerate(texts) if _view_marked(text)]


def _view_marked(text: str) -> bool:
    """Would :func:`_marked_joined` mark ``text``? Marking depends on a view's own bytes only (no
    alternative crosses the NUL around it), so the text is looked at alone: a NEEDS_SCAN match
    marks it, no match of either pattern (and no NUL of its own) leaves it, and only a possible
    base64 run takes the joined path's decoding."""
    blob = b"\0" + _view(text) + b"\0"  # as _blob((text,)) builds it, without the offsets
    hits = _EITHER_SET.Match(blob)
    if 0 in hits:
        return True
    if not hits and blob.count(b"\0") == 2:
        return False
    return bool(_marked_joined((text,)))


def _marked_joined(texts: Sequence[str]) -> list[int]:
    """:func:`_marked` by one pass over all of ``texts`` joined."""
    blob, starts = _blob(texts)
    count, size, pos = len(texts), len(blob), 0
    if blob.count(b"\0") == count + 1:
        marked = [False] * count
    else:  # a view with a NUL of its own is always scanned
        marked = [b"\0" in blob[starts[i] + 1 : starts[i + 1]] for i in range(count)]
    while pos < size:
        found = _PROGRAM.Match(_UNANCHORED, blob, pos, size)[0][0]
        if found < 0:
            break
        index = bisect_right(starts, found) - 1
        if index >= count:
            break
        marked[index] = True
        pos = starts[index + 1]  # the rest of a marked view need not be looked at
    _mark_base64(blob, starts, marked)
    return [i for i, flag in enumerate(marked) if flag]


def _mark_base64(blob: bytes, starts: list[int], marked: list[bool]) -> None:
    """Mark views holding a base64 run that decodes to readable text. Only runs that
    :data:`READABLE_START` admits are decoded; a NUL is never part of a run."""
    runs = blob.translate(BASE64_RUNS)  # alphabet -> "A", anything else -> " "
    count, size, pos = len(marked), len(blob), 0
    while pos < size:
        found = _READABLE.Match(_UNANCHORED, blob, pos, size)[0][0]
        if found < 0:
            return
        start = found + 1  # the match begins with the byte before the run
        index = bisect_right(starts, start) - 1
        if index >= count:
            return
        end = runs.find(b" ", start)  # the NUL after the view is a " " there, so the run ends in its view
        if not marked[index] and base64_text(blob[start:end]) is not None:
            marked[index] = True
        pos = starts[index + 1] if marked[index] else end


def scan_each(texts: Sequence[str], budget: Budget,
              hint: Callable[[int], str | None] | None = None) -> list[tuple[int, list[Span]]]:
    """``(index, spans)`` for each text with findings: what ``scan(texts[i], budget, hint=hint(i))``
    returns for every ``i``, in order, with the texts that cannot hold a finding never scanned.
    Skipped texts are still charged to ``budget``, so its character limit counts what it always did."""
    chosen = candidates(texts)
    skipped = sum(map(len, texts)) - sum(len(texts[i]) for i in chosen)
    budget.charge(skipped)
    out = []
    for i in chosen:
        spans = scan(texts[i], budget, hint=hint(i) if hint else None)
        if spans:
            out.append((i, spans))
    return out
