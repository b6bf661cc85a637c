"""``scan``: normalise, gate, run the detectors that could match, decode and rescan encoded tokens.

Cost matters: ``scan`` runs on every string of every record. Cheap facts about the view (digit and
letter counts, a few marker bytes; see :mod:`pipeline.detection.facts`) close the gates of detectors
that cannot match, so an ordinary string such as ``EUR`` or ``SKU-12345`` costs a few bytes operations
and no regex at all.
"""

from __future__ import annotations

from bisect import bisect_right

import re2

from pipeline.detection.bare_card import BareCard
from pipeline.detection.base import DigitDetector, PatternDetector, ScanContext, Span, Window, registry
from pipeline.detection.budget import Budget
from pipeline.detection.encoded import DECODERS, base64_tokens
from pipeline.detection.facts import Facts, Gate
from pipeline.normalize import DigitRun, Normalized, normalize

MAX_DEPTH = 2  # decode encoded tokens inside encoded tokens this deep, no deeper
ENCODED = "encoded"  # finding type for printable base64 still nested beyond MAX_DEPTH: hold it


class _Detectors:
    """Instances of every registered detector, grouped for the scan loop (built on first use)."""

    def __init__(self) -> None:
        instances = [cls() for _, cls in sorted(registry().items())]
        self.pattern = [d for d in instances if isinstance(d, PatternDetector)]
        self.by_length: dict[int, list[DigitDetector]] = {}
        for d in instances:
            if isinstance(d, DigitDetector):
                for length in d.lengths:
                    self.by_length.setdefault(length, []).append(d)
        self.by_length = dict(sorted(self.by_length.items()))
        self.min_digits = min(self.by_length)  # no digit detector confirms a shorter run
        self.max_digits = max(self.by_length)  # nor a longer window
        # Pattern detectors by the digits their gate needs, so a view with few digits looks at few gates.
        gated = sorted(self.pattern, key=lambda d: d.gate.digits)
        self.gate_digits = [d.gate.digits for d in gated]
        # A gate's marker bytes as a set (None: it has none), tested against the markers a view holds,
        # found with one translate per view (every translate(None, delete) rebuilds a 256-byte table).
        self.gates = [(d, d.gate.letters, d.gate.alnum, frozenset(d.gate.any_of) or None, d.gate.check) for d in gated]
        self.gate_markers = bytes(sorted(set(b"".join(d.gate.any_of for d in gated))))
        self.not_gate_markers = Gate(any_of=self.gate_markers).delete_table()
        # One RE2 set of every candidate pattern: when several gates are open, one pass tells which match.
        self.prefilter = re2.Set.SearchSet()
        for detector in self.pattern:
            self.prefilter.Add(detector.pattern.pattern)
        self.prefilter.Compile()
        self.set_index = {id(d): i for i, d in enumerate(self.pattern)}
        self._quiet_rules(gated)
        self.bare_card = BareCard(self.by_length, self.pattern)

    def _quiet_rules(self, gated: list[PatternDetector]) -> None:
        """Fold every gate into one test for the common case: a view with very few digits."""
        # Below this many digits, only gates asking for fewer digits can be open ...
        self.quiet_below = min(self.min_digits, *(d.gate.digits for d in gated if d.gate.digits > 0))
        few = [d.gate for d in gated if d.gate.digits < self.quiet_below]
        # ... and each of those needs one of its marker bytes, or enough letters and alphanumerics
        # (a gate's extra ``check`` is left out here: dropping a condition keeps the test necessary).
        markers = b"".join(g.any_of for g in few) + b"".join(d.marker[:1] for d in DECODERS if d.marker)
        self.not_markers = Gate(any_of=markers).delete_table()
        self.plain = [(g.letters, g.alnum) for g in few if not g.any_of]

    def quiet(self, facts: Facts) -> bool:
        """Can no detector and no decoder find anything in this view? (Necessary conditions only.)"""
        if facts.digits >= self.quiet_below or facts.data.translate(None, self.not_markers):
            return False
        letters, alnum = facts.letters, facts.letters + facts.digits
        if any(letters >= min_letters and alnum >= min_alnum for min_letters, min_alnum in self.plain):
            return False
        return not facts.base64_run()

    def open_patterns(self, facts: Facts) -> list[PatternDetector]:
        """The pattern detectors whose gates ``facts`` leave open, in registry order."""
        letters, data = facts.letters, facts.data
        alnum = letters + facts.digits
        present = data.translate(None, self.not_gate_markers)  # the marker bytes in the view
        if len(present) > 64:  # a long view: its distinct markers, without a set built over every byte
            present = bytes(b for b in self.gate_markers if b in present)
        present = frozenset(present)
        open_ = [d for d, min_letters, min_alnum, markers, check in self.gates[: bisect_right(self.gate_digits, facts.digits)]
                 if letters >= min_letters and alnum >= min_alnum and (markers is None or not markers.isdisjoint(present))
                 and (check is None or check(data))]
        if len(open_) > 1:
            matched = self.prefilter.Match(data) or ()
            open_ = [d for d in open_ if self.set_index[id(d)] in matched]
        return open_


_detectors: _Detectors | None = None


def _all() -> _Detectors:
    global _detectors
    if _detectors is None:
        _detectors = _Detectors()
    return _detectors


def _digit_findings(ctx: ScanContext, detectors: _Detectors) -> list[tuple[str, int, int]]:
    found: list[tuple[str, int, int]] = []
    by_length = detectors.by_length
    for run in ctx.runs(detectors.min_digits):
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
    groups = run.groups
    group, hit = groups[index], None
    first, longest = group.first, _all().max_digits
    # Windows end where groups end: walk the groups from ``index`` (shortest window first) instead
    # of trying every detector length, most of which end inside a group.
    for last in range(index, len(groups)):
        end_group = groups[last]
        length = end_group.first + end_group.end - end_group.start - first
        if length > longest:
            break
        detectors = by_length.get(length)
        if detectors is None:
            continue
        window = Window(run, index, last, group.start, end_group.end)
        digits = run.digits[first : first + length]
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
    facts = Facts(view.data)
    bare_card = _all().bare_card
    # The commonest flagged string, a note holding one bare card number, in a few checks (only
    # when the view is the text and its digit count is a card's length).
    if depth == 0 and view.starts is None and facts.digits in bare_card.lengths:
        card = bare_card.find(text, hint)
        if card is not None:
            # Found in the order of the general path: digit windows, (no) patterns, decoded tokens.
            ctx = ScanContext(view, budget, hint)
            return [card, *_encoded_findings(ctx, [base64_tokens], hint, depth)]
    return _scan_general(view, facts, budget, hint, depth)


def _scan_general(view: Normalized, facts: Facts, budget: Budget, hint: str | None,
                  depth: int) -> list[tuple[str, int, int]]:
    """What :func:`_scan_view` finds in ``view`` by the general path (the budget already charged)."""
    detectors = _all()
    if detectors.quiet(facts):
        return []
    patterns = detectors.open_patterns(facts)
    digits = facts.digit_run(detectors.min_digits)
    decoders = [d.decode for d in DECODERS if d.possible(facts)]
    if not (patterns or digits or decoders):
        return []
    ctx = ScanContext(view, budget, hint)
    found: list[tuple[str, int, int]] = []
    if digits:
        found.extend(_digit_findings(ctx, detectors))
    for detector in patterns:
        found.extend((detector.name, s, e) for s, e in detector.find(ctx))
    if decoders:
        found.extend(_encoded_findings(ctx, decoders, hint, depth))
    if view.starts is None:
        return found
    return [(kind, *view.to_original(s, e)) for kind, s, e in found]


def _encoded_findings(ctx: ScanContext, decoders: list, hint: str | None, depth: int) -> list[tuple[str, int, int]]:
    found = []
    if depth >= MAX_DEPTH:
        # Too deep to keep decoding: readable base64 at this depth is itself suspicious.
        return [(ENCODED, s, e) for s, e, _ in base64_tokens(ctx.data)] if base64_tokens in decoders else []
    for decoder in decoders:
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
    if len(spans) < 2:  # the usual finding: one span, nothing to sort or unite
        return list(spans)
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
