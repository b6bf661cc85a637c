"""IPv4 addresses, confirmed by ``ipaddress``; dotted version numbers (``v1.2.3.4``) are not."""

from __future__ import annotations

import ipaddress

import re2

from pipeline.detection import rx
from pipeline.detection.base import PatternDetector, ScanContext
from pipeline.detection.facts import Gate

# "[.]" and "(.)" are the defanged spellings security tooling uses.
_DOT = r"(?:\.|\[\.\]|\(\.\))"
_PATTERN = re2.compile(f"\\b[0-9]{{1,3}}(?:{_DOT}[0-9]{{1,3}}){{3}}\\b".encode())
_VERSION = re2.compile(
    rb"(?i)(?:^|[^a-z])(?:v|version|ver|release|build|firmware|fw|rev|sdk|api)\s*[:=]?\s*$"
)
_DIGIT_OR_DOT = frozenset(b"0123456789.")


class Ipv4Detector(PatternDetector):
    name = "ipv4"
    pattern = _PATTERN
    gate = Gate(digits=4, any_of=b".")  # four numbers, three dots (defanged "[.]" holds one too)

    def confirm(self, ctx: ScanContext, start: int, end: int) -> tuple[int, int] | None:
        data = ctx.data
        # Part of a longer dotted number (a 5-part version, an OID) is not an address.
        if start > 0 and data[start - 1] in _DIGIT_OR_DOT:
            return None
        if end + 1 < len(data) and data[end] == ord(".") and data[end + 1] in _DIGIT_OR_DOT:
            return None
        if rx.found(_VERSION, data[max(0, start - 16) : start]):
            return None
        text = data[start:end].decode("ascii").replace("[.]", ".").replace("(.)", ".")
        try:
            ipaddress.IPv4Address(text)
        except ValueError:
            return None
        return start, end
