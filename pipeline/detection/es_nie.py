"""Spanish NIE (foreigner id): X/Y/Z, seven digits and a mod 23 check letter."""

from __future__ import annotations

import re2
from stdnum.es import nie

from pipeline.detection.base import PatternDetector, ScanContext
from pipeline.detection.es_dni import SEP, compact
from pipeline.detection.facts import Gate


class EsNieDetector(PatternDetector):
    name = "es_nie"
    country = "ES"
    pattern = re2.compile(rb"(?i)\b[xyz]" + SEP + rb"[0-9](?:" + SEP + rb"[0-9]){6}" + SEP + rb"[a-z]\b")
    gate = Gate(digits=7, letters=2, any_of=b"xyzXYZ")

    def confirm(self, ctx: ScanContext, start: int, end: int) -> tuple[int, int] | None:
        return (start, end) if nie.is_valid(compact(ctx, start, end)) else None
