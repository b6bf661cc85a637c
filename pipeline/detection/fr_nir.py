"""French NIR (social security number): structure plus a mod 97 key. Digit windows cover mainland
numbers; a pattern covers Corsican departments 2A/2B, whose letters break a digit run."""

from __future__ import annotations

import re2
from stdnum.fr import nir

from pipeline.detection.base import PatternDetector, ScanContext
from pipeline.detection.facts import Gate
from pipeline.detection.national import NationalIdDetector, id_keywords

_ALNUM = frozenset(b"0123456789ABab")


def nir_valid(digits: str) -> bool:
    """Sex digit 1/2, a month 01-12 (or 20+ for unknown months), then the mod 97 key."""
    month = int(digits[3:5])
    return digits[0] in "12" and (1 <= month <= 12 or month >= 20) and nir.is_valid(digits)


class FrNirDetector(NationalIdDetector):
    name = "fr_nir"
    country = "FR"
    lengths = (15,)
    context = "never"
    keywords = id_keywords("nir", "securite sociale", "secu", "insee", "numero de securite")
    validate = staticmethod(nir_valid)

    def plausible(self, digits: str) -> bool:
        return digits[0] in "12"


class FrNirCorsicaDetector(PatternDetector):
    name = "fr_nir_corsica"
    country = "FR"
    pattern = re2.compile(
        rb"(?i)\b[12][ .]?[0-9]{2}[ .]?[0-9]{2}[ .]?2[ab][ .]?[0-9]{3}[ .]?[0-9]{3}[ .]?[0-9]{2}\b"
    )
    gate = Gate(digits=14, letters=1, any_of=b"aAbB")  # 1+2+2+1+3+3+2 digits around "2A"/"2B"

    def confirm(self, ctx: ScanContext, start: int, end: int) -> tuple[int, int] | None:
        compact = bytes(b for b in ctx.data[start:end] if b in _ALNUM).decode().upper()
        return (start, end) if nir_valid(compact) else None
