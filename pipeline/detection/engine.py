"""``scan``: normalise, pre-filter once, run the detectors, decode and rescan encoded tokens."""

from __future__ import annotations

import re2

from pipeline.detection.base import DigitDetector, PatternDetector, ScanContext, Span, Window, registry
from pipeline.detection.budget import Budget
from pipeline.detection.encoded import DECODERS, base64_tokens
from pipeline.normalize import DigitRun, normalize

MAX_DEPTH = 2  # decode encoded tokens inside encoded tokens this deep, no deeper
ENCODED = "encoded"  # finding type for printable base64 still nested beyond MAX_DEPTH: hold it

# One pass over the view decides which detector groups can possibly match.
_PREFILTER = re2.Set.SearchSet()
_GROUPS = ("digit", "email", "encoded")  # "email" is informational; pattern detectors use their own set
for _pattern in (rb"[0-9]", rb"(?i)@|[\[\(\{<]\s*at\s*[\]\)\}>]", rb"[A-Za-z0-9+/_-]{8}|%[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}"):
    _PREFILTER.Add(_pattern)
_PREFILTER.Compile()


class _Detectors:
    """Instances of every registered detector, grouped for the scan loop (built on first use)."""

    def __init__(self) -> None:
        instances = [cls() for _, cls in sorted(registry().items())]
        self.pattern = [d for d in instances if isinstance(d, PatternDetector)]
        # One RE2 set of every candidate pattern: a single pass tells which detectors can match.
        self.prefilter = re2.Set.SearchSet()
        for detector in self.pattern:
            self.prefilter.Add(detector.pattern.pattern)
        self.prefilter.Compile()
        self.by_length: dict[int, list[DigitDetector]] = {}
        for d in instances:
            if isinstance(d, DigitDetector):
                for length in d.lengths:
                    self.by_length.setdefault(length, []).append(d)


_detectors: _Detectors | None = None


def _all() -> _Detectors:
    global _detectors
    if _detectors is None:
        _detectors = _Detectors()
    return _detectors


def _digit_findings(ctx: ScanContext, by_length: dict[int, list[DigitDetector]]) -> list[tuple[str, int, int]]:
    found: list[tuple[str, int, int]] = []
    for run in ctx.runs():
        ctx.budget.check()
        if run.uniformly_grouped(ctx.data):
            _tile_uniform_run(ctx, run, by_length, found)
            continue
        for index in range(len(run.groups)):
            if index % 256 == 255:
                ctx.budget.check()
            _try_windows_at(ctx, run, index, by_length, found)
    return found


def _try_windows_at(ctx: ScanContext, run: DigitRun, index: int, by_length: dict[int, list[DigitDetector]],
                    found: list[tuple[str, int, int]]) -> int | None:
    """Try every window starting at group ``index``; the last group of the longest hit, if any."""
    group, hit = run.groups[index], None
    for length, detectors in by_length.items():
        last = run.last_group(index, length)
        if last is None:
            continue
        window = Window(run, index, last, group.start, run.groups[last].end)
        digits = run.digits[group.first : group.first + length]
        for detector in detectors:
            if detector.confirm(ctx, digits, window):
                found.append((detector.name, window.start, window.end))
                hit = last if hit is None else max(hit, last)
                break
    return hit


def _tile_uniform_run(ctx: ScanContext, run: DigitRun, by_length: dict[int, list[DigitDetector]],
                      found: list[tuple[str, int, int]]) -> None:
    """An evenly grouped run (``9400 1000 0000 ...``, ``4 1 1 1 ...``) is read left to right: values
    start at its first group or right after a previous value, never at an arbitrary group inside.
    This keeps a megabyte of ``1 2 3 4 ...`` linear with a small constant."""
    index = 0
    while index < len(run.groups):
        ctx.budget.check()
        hit = _try_windows_at(ctx, run, index, by_length, found)
        if hit is None:
            return
        index = hit + 1


def _scan_view(text: str, budget: Budget, hint: str | None, depth: int) -> list[tuple[str, int, int]]:
    """Findings in ``text`` as (type, original start, original end), unmerged."""
    budget.charge(len(text))
    view = normalize(text)
    ctx = ScanContext(view, budget, hint)
    groups = {"any"} | {_GROUPS[i] for i in (_PREFILTER.Match(ctx.data) or ())}
    detectors = _all()
    found: list[tuple[str, int, int]] = []
    if "digit" in groups:
        found.extend(_digit_findings(ctx, detectors.by_length))
    for index in sorted(detectors.prefilter.Match(ctx.data) or ()):
        detector = detectors.pattern[index]
        found.extend((detector.name, s, e) for s, e in detector.find(ctx))
    if "encoded" in groups:
        found.extend(_encoded_findings(ctx, hint, depth))
    return [(kind, *view.to_original(s, e)) for kind, s, e in found]


def _encoded_findings(ctx: ScanContext, hint: str | None, depth: int) -> list[tuple[str, int, int]]:
    found = []
    if depth >= MAX_DEPTH:
        # Too deep to keep decoding: readable base64 at this depth is itself suspicious.
        return [(ENCODED, s, e) for s, e, _ in base64_tokens(ctx.data)]
    for decoder in DECODERS:
        for start, end, decoded in decoder(ctx.data):
            # Words just before the token (e.g. "SSN:") still label what is inside it.
            inner_hint = f"{hint or ''} {ctx.text(max(0, start - 48), start)}"
            inner = _scan_view(decoded, ctx.budget, inner_hint, depth + 1)
            if inner:
                # The token takes the type of its largest finding (an IBAN over a card-like slice).
                kind = max(inner, key=lambda f: f[2] - f[1])[0]
                found.append((kind, start, end))
    return found


def merge(spans: list[Span]) -> list[Span]:
    """Sorted, non-overlapping spans; overlapping ones are united and keep the longest one's type."""
    merged: list[Span] = []
    longest = 0
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            kind = span.type if span.end - span.start > longest else last.type
            longest = max(longest, span.end - span.start)
            merged[-1] = Span(kind, last.start, max(last.end, span.end))
        else:
            merged.append(span)
            longest = span.end - span.start
    return merged


def scan(text: str, budget: Budget | None = None, *, hint: str | None = None) -> list[Span]:
    """Personal data found in ``text``: merged, non-overlapping spans sorted by start, in ORIGINAL offsets.

    ``budget`` is the record's :class:`Budget` (a fresh default one if omitted); an overrun raises
    :class:`DetectionBudgetExceeded`. ``hint`` is extra context such as the field name (``"ssn"``),
    consulted by detectors that need a keyword to confirm a weak checksum.
    """
    if not isinstance(text, str):
        raise TypeError(f"scan() takes a string, not {type(text).__name__}")
    budget = budget if budget is not None else Budget()
    found = _scan_view(text, budget, hint, depth=0)
    return merge([Span(kind, start, end) for kind, start, end in found if end > start])


def redact_spans(text: str, spans: list[Span], fmt: str = "[{type}]") -> str:
    """``text`` with every span replaced by ``fmt`` formatted with the span's type."""
    out, pos = [], 0
    for span in merge(list(spans)):
        out.append(text[pos : span.start])
        out.append(fmt.format(type=span.type))
        pos = span.end
    out.append(text[pos:])
    return "".join(out)
