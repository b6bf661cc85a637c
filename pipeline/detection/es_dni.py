"""Spanish DNI: eight digits and a mod 23 check letter (``12345678Z``, ``12.345.678-Z``)."""

from __future__ import annotations

import re2
from stdnum.es import dni

from pipeline.detection.base import PatternDetector, ScanContext
from pipeline.detection.facts import Gate

# The separators a digit run may hold (see pipeline.normalize).
SEP = rb"[ \t\r\n./\\-]{0,3}"
_KEEP = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def compact(ctx: ScanContext, start: int, end: int) -> str:
    return bytes(b for b in ctx.data[start:end] if b in _KEEP).decode().upper()


class EsDniDetector(PatternDetector):
    name = "es_dni"
    country = "ES"
    pattern = re2.compile(rb"(?i)\b[0-9](?:" + SEP + rb"[0-9]){7}" + SEP + rb"[a-z]\b")
    gate = Gate(digits=8, letters=1)

    def confirm(self, ctx: ScanContext, start: int, end: int) -> tuple[int, int] | None:
        if not ctx.isolated(start, end) or ctx.labelled_not_personal(start):
            return None
        return (start, end) if dni.is_valid(compact(ctx, start, end)) else None
