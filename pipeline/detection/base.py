"""What a detector is, and the per-string context detectors share.

Two kinds, both small registered classes with ``name`` and ``country`` class attributes:

* :class:`PatternDetector` finds candidates with one ``re2`` pattern over the ASCII view and confirms
  each with a real check (checksum, registry length, ``ipaddress``, ``phonenumbers``);
* :class:`DigitDetector` confirms windows of collapsed digit runs (see :mod:`pipeline.normalize`),
  so ``4111 1111-1111.1111`` and ``4 1 1 1 ...`` reach the checksum the same way.

Checks with weak or no checksums (SSN, NHS, BSN, ...) also ask for a context keyword nearby or the
number's customary formatting, to keep false positives on order numbers and timestamps rare.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import re2

from pipeline.detection import rx
from pipeline.detection.budget import Budget
from pipeline.detection.facts import Gate
from pipeline.normalize import DigitRun, Normalized, digit_runs

_REGISTRY: dict[str, type[Detector]] = {}

_ALNUM = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_JOINERS = frozenset(b"-./_#\\")
_TOKEN_END = re2.compile(rb"[^0-9A-Za-z]")
# Words that mark a number as something other than personal data, checked just before it.
_NOT_PERSONAL = re2.compile(
    rb"(?i)(?:order|invoice|tracking|track|sku|item|part|serial|model|ticket|version|build|"
    rb"ref|reference|po|batch|lot|case|txn|transaction|awb|shipment|parcel|isbn)\s*(?:no\.?|nr\.?|number|id|#)?\s*[:#=]?\s*$"
)


@dataclass(frozen=True, slots=True)
class Span:
    """A finding: its type and where it is in the ORIGINAL string. Never the value."""

    type: str
    start: int
    end: int


class ScanContext:
    """One string being scanned: its view, optional hint (e.g. the field name) and the budget."""

    def __init__(self, view: Normalized, budget: Budget, hint: str | None = None) -> None:
        self.view = view
        self.data = view.data
        self.budget = budget
        self.hint = (hint or "").encode("ascii", "replace")
        self._runs: list[DigitRun] | None = None

    def runs(self, min_digits: int) -> list[DigitRun]:
        """Digit runs of the view with at least ``min_digits`` digits (computed once per view)."""
        if self._runs is None:
            self._runs = digit_runs(self.data, min_digits=min_digits)
        return self._runs

    def text(self, start: int, end: int) -> str:
        return self.data[start:end].decode("ascii")

    def near(self, pattern: re2._Regexp, start: int, end: int, before: int = 48, after: int = 24) -> bool:
        """Does ``pattern`` occur just before or after view span [start, end), or in the hint?"""
        data = self.data
        return (
            rx.found(pattern, data[max(0, start - before) : start])
            or rx.found(pattern, data[end : end + after])
            or (bool(self.hint) and rx.found(pattern, self.hint))
        )

    def hint_has(self, pattern: re2._Regexp) -> bool:
        return bool(self.hint) and rx.found(pattern, self.hint)

    def labelled_not_personal(self, start: int) -> bool:
        """Is the number at ``start`` introduced as an order, tracking, SKU, version ... number?"""
        return rx.found(_NOT_PERSONAL, self.data[max(0, start - 32) : start])

    def isolated(self, start: int, end: int) -> bool:
        """Is [start, end) a token of its own, not glued into ``ORD-1234`` or ``1Z999AA1``?"""
        data = self.data
        if start > 0:
            prev = data[start - 1]
            if prev in _ALNUM or (prev in _JOINERS and start > 1 and data[start - 2] in _ALNUM):
                return False
        if end < len(data):
            nxt = data[end]
            if nxt in _ALNUM or (nxt in _JOINERS and end + 1 < len(data) and data[end + 1] in _ALNUM):
                return False
        return True


class Detector(ABC):
    """A detector registers itself by subclassing with a ``name``."""

    name: ClassVar[str]
    country: ClassVar[str | None] = None  # ISO 3166 alpha-2, None for global types

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is None:
            return
        if name in _REGISTRY:
            raise TypeError(f"detector {name!r} is registered twice")
        _REGISTRY[name] = cls


class PatternDetector(Detector):
    """Candidates from one pattern over the view bytes, each confirmed by :meth:`confirm`."""

    pattern: ClassVar[re2._Regexp]
    # What ``pattern`` (and ``confirm``) cannot match without; the engine skips the detector otherwise.
    gate: ClassVar[Gate] = Gate()

    def find(self, ctx: ScanContext) -> Iterator[tuple[int, int]]:
        """View spans of confirmed findings. After a rejected candidate the search resumes at the
        next token inside it, so a false candidate cannot swallow a real one that overlaps it,
        while one long token (a megabyte of digits) is still tried once, not once per byte."""
        pos, data, pattern = 0, ctx.data, self.pattern
        while True:
            match = rx.search(pattern, data, pos)
            if match is None:
                return
            ctx.budget.check()
            start, end = match
            span = self.confirm(ctx, start, end)
            if span is None:
                pos = self.resume_after(ctx, start, end)
                if pos is None:
                    return
            else:
                yield span
                pos = max(span[1], start + 1)

    @abstractmethod
    def confirm(self, ctx: ScanContext, start: int, end: int) -> tuple[int, int] | None:
        """The confirmed view span within a candidate, or None."""

    def resume_after(self, ctx: ScanContext, start: int, end: int) -> int | None:
        """Where to search next after rejecting [start, end): the next token inside it."""
        boundary = rx.search(_TOKEN_END, ctx.data, start + 1)
        return None if boundary is None else boundary[0]


class Window:
    """Some digits of a run, from the start of one group to the end of another, at view [start, end).

    A plain slotted class: the scan loop builds one per candidate window, and a frozen dataclass's
    ``__init__`` costs several times more."""

    __slots__ = ("run", "first_group", "last_group", "start", "end")

    def __init__(self, run: DigitRun, first_group: int, last_group: int, start: int, end: int) -> None:
        self.run = run
        self.first_group = first_group
        self.last_group = last_group
        self.start = start
        self.end = end

    @property
    def whole_run(self) -> bool:
        return self.first_group == 0 and self.last_group == len(self.run.groups) - 1

    def extra_digits(self) -> int:
        """Digits of the run outside this window."""
        return len(self.run.digits) - (self.run.groups[self.last_group].end - self.run.groups[self.last_group].start
                                       + self.run.groups[self.last_group].first - self.run.groups[self.first_group].first)


class DigitDetector(Detector):
    """Confirms windows of collapsed digit runs of the given ``lengths``."""

    lengths: ClassVar[tuple[int, ...]]

    @abstractmethod
    def confirm(self, ctx: ScanContext, digits: str, window: Window) -> bool:
        """Is ``digits`` (shown at view [window.start, window.end)) one of ours?"""


def registry() -> dict[str, type[Detector]]:
    return _REGISTRY


def keywords(*words: str) -> re2._Regexp:
    """A case-insensitive pattern for context words, matched at word starts."""
    alternatives = "|".join(w.replace(" ", r"[\s._-]*") for w in words)
    return re2.compile(f"(?i)(?:^|[^a-z])(?:{alternatives})".encode())
