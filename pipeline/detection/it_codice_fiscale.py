"""Italian codice fiscale: its fixed letter/digit layout (with omocodia substitutions) and check letter."""

from __future__ import annotations

import re2
from stdnum.it import codicefiscale

from pipeline.detection.base import PatternDetector, ScanContext
from pipeline.detection.facts import Gate
from pipeline.detection.es_dni import compact

_D = "[0-9lmnpqrstuv]"  # a digit, or its omocodia letter
_S = r"[ \t\r\n./\\-]{0,3}"


class ItCodiceFiscaleDetector(PatternDetector):
    name = "it_codice_fiscale"
    country = "IT"
    pattern = re2.compile(
        ("(?i)\\b" + _S.join(["[a-z]"] * 6 + [_D, _D, "[abcdehlmprst]", _D, _D, "[a-z]", _D, _D, _D, "[a-z]"]) + "\\b").encode()
    )
    # Sixteen characters; nine are letters (six, the month, one and the check letter) even without omocodia.
    gate = Gate(letters=9, alnum=16)

    def confirm(self, ctx: ScanContext, start: int, end: int) -> tuple[int, int] | None:
        return (start, end) if codicefiscale.is_valid(compact(ctx, start, end)) else None
