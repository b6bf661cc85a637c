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

    def plausible(self, digits: str) -> bool:
        # stdnum wants a real birth date (``YYMMDD`` before the last four digits in both forms):
        # a month 01-12 and a day 01-31 at least. Most digit windows (a card's first twelve
        # digits) fail here, before the keyword searches around them.
        month, day = digits[-8:-6], digits[-6:-4]
        return "01" <= month <= "12" and "01" <= day <= "31"
