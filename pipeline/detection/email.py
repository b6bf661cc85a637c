"""Email addresses, including ``name [at] example [dot] com`` spellings and look-alike letters
(folded by the view, so ``јоhn@ехаmple.com`` with Cyrillic letters is found too)."""

from __future__ import annotations

import re2

from pipeline.detection.base import PatternDetector, ScanContext
from pipeline.detection.facts import Gate

_AT = r"(?:@|\s*[\[\(\{<]\s*at\s*[\]\)\}>]\s*)"
_DOT = r"(?:\.|\s*[\[\(\{<]\s*dot\s*[\]\)\}>]\s*)"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PATTERN = re2.compile(
    f"(?i)[a-z0-9!#$%&'*+/=?^_`{{|}}~-]+(?:\\.[a-z0-9!#$%&'*+/=?^_`{{|}}~-]+)*{_AT}"
    f"(?:{_LABEL}{_DOT}){{1,8}}[a-z]{{2,24}}\\b".encode()
)


class EmailDetector(PatternDetector):
    name = "email"
    pattern = _PATTERN
    # "@" or the opening bracket of "[at]"; the top-level domain is two letters or more.
    gate = Gate(letters=2, any_of=b"@[({<")

    def confirm(self, ctx: ScanContext, start: int, end: int) -> tuple[int, int] | None:
        return start, end
