"""Phone numbers, confirmed by ``phonenumbers``. Plenty of order numbers and timestamps are valid
numbers somewhere, so a candidate also needs phone-like formatting: a leading ``+`` or ``00``,
a ``(area) exchange-line`` shape, or a phone keyword nearby (or, for national formats with a
trunk ``0``, space-separated groups as in ``020 7946 0958``)."""

from __future__ import annotations

from collections.abc import Iterator

import phonenumbers
import re2

from pipeline.detection import rx
from pipeline.detection.base import PatternDetector, ScanContext, keywords
from pipeline.detection.facts import Gate

# Digits with short separators, optionally led by +, 00 or an opening parenthesis.
_PATTERN = re2.compile(rb"(?:\+[ ]?|\b00[ ]?|\()?[0-9](?:[ \t\r\n.\-/()]{0,3}[0-9]){6,16}")
_NANP = re2.compile(rb"\([0-9]{3}\)[ .-]?[0-9]{3}[ .-][0-9]{4}")
_TRUNK = re2.compile(rb"0[0-9]{1,4}(?: [0-9]{2,4}){1,4}")
_WORDS = (
    "phone", "tel", "telephone", "mobile", "mob", "cell", "call", "fax", "whatsapp", "sms", "contact",
    "telefon", "telefono", "telephone", "handy", "portable", "movil", "cellulare", "telefoon",
    "komorka", "komórka", "mobil", "ring",
)
_CONTEXT = keywords(*_WORDS)
# The context words anywhere, without the word-start guard: wherever near() finds one (in a slice
# of the view, where "^" may fall inside a word, or in the hint), these letters are there.
_ANY_CONTEXT = re2.compile(f"(?i)(?:{'|'.join(_WORDS)})".encode())
# What a view needs before confirm() can accept any candidate in it: "+" or "(" (international,
# NANP), or a context word; else "00" (international) or a trunk "0" and a space-separated group
# (_TRUNK) at an isolated start, i.e. after a byte that is not alphanumeric (ScanContext.isolated).
_MAYBE = re2.compile(b"[+(]|(?:^|[^0-9A-Za-z])(?:00|0[0-9]{1,4} [0-9]{2,4})|(?:" + _ANY_CONTEXT.pattern + b")")
_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "PL", "SE", "IE", "AT", "CH", "BE")
_SEPARATORS = frozenset(b" \t\r\n.-/()")
_RUN_REST = re2.compile(rb"[0-9 \t\r\n./()-]*")
# Digits -> "0", letters -> "a", the joiners of ScanContext.isolated -> "j", anything else -> " ".
_STARTS = bytes.maketrans(bytes(range(256)), bytes(
    48 if chr(b).isdigit() and b < 128 else 97 if chr(b).isalpha() and b < 128 else 106 if b in b"-./_#\\" else 32
    for b in range(256)))


def _could_start(data: bytes) -> bool:
    """Can any candidate pass confirm()'s first test? It must start with "+" or "(", or at a digit
    that ``ScanContext.isolated`` accepts on its left: the view's start, a byte that is neither
    alphanumeric nor a joiner, or a joiner with no alphanumeric before it. IDs like ``pay-00000003``
    have no such digit."""
    if b"+" in data or b"(" in data:
        return True
    classes = b"  " + data.translate(_STARTS)  # two pads stand for the start of the view
    return b" 0" in classes or b" j0" in classes or b"jj0" in classes


def _valid(text: str, regions: tuple[str | None, ...]) -> bool:
    for region in regions:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


def _continues(data: bytes, start: int, end: int) -> bool:
    """Is the candidate a slice of a longer number (digits right before or after, past separators)?"""
    before = data[max(0, start - 4) : start].rstrip(b" \t.-/")
    after = data[end : end + 4].lstrip(b" \t.-/")
    return before[-1:].isdigit() or after[:1].isdigit()


class PhoneDetector(PatternDetector):
    name = "phone"
    pattern = _PATTERN
    gate = Gate(digits=7, check=_could_start)

    # What could_confirm() looks for in the view, for a caller that asks it in one RE2 set pass
    # together with other patterns (then only the hint is left: hint_could_confirm()).
    view_pattern = _MAYBE.pattern

    @staticmethod
    def could_confirm(data: bytes, hint: bytes) -> bool:
        """Can any branch of confirm() accept a candidate in view ``data`` with ``hint`` (the
        scan context's hint bytes)? One pass over the view and one over the hint."""
        return rx.found(_MAYBE, data) or PhoneDetector.hint_could_confirm(hint)

    @staticmethod
    def hint_could_confirm(hint: bytes) -> bool:
        """The hint's part of :meth:`could_confirm`: a context word in it."""
        return bool(hint) and rx.found(_ANY_CONTEXT, hint)

    def find(self, ctx: ScanContext) -> Iterator[tuple[int, int]]:
        # Most candidates in an event are card numbers, IBAN digits and dates that no branch of
        # confirm() could accept: rule them all out at once first.
        if not self.could_confirm(ctx.data, ctx.hint):
            return iter(())
        return super().find(ctx)

    def resume_after(self, ctx: ScanContext, start: int, end: int) -> int | None:
        # No phone starts inside a longer run of digits (see _continues): skip the whole run.
        rest = rx.match_end(_RUN_REST, ctx.data, end)
        return rest if rest is not None else end

    def confirm(self, ctx: ScanContext, start: int, end: int) -> tuple[int, int] | None:
        while end > start and ctx.data[end - 1] in _SEPARATORS:
            end -= 1  # a trailing ")" or "-" is not part of the number
        raw = ctx.data[start:end]
        if not ctx.isolated(start, end) and raw[:1] not in (b"+", b"("):
            return None
        if _continues(ctx.data, start, end):
            return None
        text = raw.decode("ascii")
        if raw.startswith(b"+") or raw.startswith(b"00"):
            digits = "".join(c for c in text if c.isdigit())
            international = "+" + (digits[2:] if raw.startswith(b"00") else digits)
            return (start, end) if _valid(international, (None,)) else None
        if ctx.labelled_not_personal(start):
            return None
        if rx.fullmatch(_NANP, raw) or ctx.near(_CONTEXT, start, end, before=32) or rx.fullmatch(_TRUNK, raw):
            return (start, end) if _valid(text, _REGIONS) else None
        return None
