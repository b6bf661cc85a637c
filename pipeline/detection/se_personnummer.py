"""Swedish personnummer: a valid birth date plus Luhn; ``YYMMDD-NNNN`` is its customary form."""

from __future__ import annotations

import re2
from stdnum.se import personnummer

from pipeline.detection.national import NationalIdDetector, id_keywords


def _valid(digits: str) -> bool:
    # stdnum wants the separator to tell the century for 10-digit numbers; "-" means under 100.
    return personnummer.is_valid(digits if len(digits) == 12 else f"{digits[:6]}-{digits[6:]}")


class SePersonnummerDetector(NationalIdDetector):
    name = "se_personnummer"
    country = "SE"
    lengths = (10, 12)
    keywords = id_keywords("personnummer", "personnr", "pnr", "samordningsnummer", "person number")
    formats = re2.compile(rb"[0-9]{6}[-+][0-9]{4}")
    validate = staticmethod(_valid)
