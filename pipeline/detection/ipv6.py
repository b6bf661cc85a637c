"""IPv6 addresses, confirmed by ``ipaddress``; clock times and MAC addresses are not valid ones."""

from __future__ import annotations

import ipaddress

import re2

from pipeline.detection.base import PatternDetector, ScanContext
from pipeline.detection.facts import Gate

_PATTERN = re2.compile(rb"(?i)[0-9a-f]{0,4}(?::{1,2}[0-9a-f]{1,4}|::){1,8}(?:\.[0-9]{1,3}){0,3}(?:%[0-9a-z]+)?")
_WORD = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:")


class Ipv6Detector(PatternDetector):
    name = "ipv6"
    pattern = _PATTERN
    # confirm() wants two hex groups at least, and ipaddress wants "::", eight groups (seven colons)
    # or six groups and a dotted quad (six colons).
    gate = Gate(alnum=2, any_of=b":", check=lambda data: b"::" in data or data.count(b":") >= 6)

    def confirm(self, ctx: ScanContext, start: int, end: int) -> tuple[int, int] | None:
        data = ctx.data
        if (start > 0 and data[start - 1] in _WORD) or (end < len(data) and data[end] in _WORD):
            return None  # "std::cout", part of a longer token
        text = data[start:end].decode("ascii")
        groups = [g for g in text.split("%")[0].replace("::", ":").split(":") if g]
        if len(groups) < 2 or ("::" not in text and len(groups) < 8 and "." not in text):
            return None
        try:
            ipaddress.IPv6Address(text.split("%")[0])
        except ValueError:
            return None
        return start, end
