"""Polish PESEL: birth date plus a mod 10 check (about 1.6% of random 11-digit numbers pass), so
the customary unbroken 11 digits, or context when it is split up."""

from __future__ import annotations

import re2
from stdnum.pl import pesel

from pipeline.detection.national import NationalIdDetector, id_keywords


class PlPeselDetector(NationalIdDetector):
    name = "pl_pesel"
    country = "PL"
    lengths = (11,)
    keywords = id_keywords("pesel", "nr pesel", "numer pesel")
    formats = re2.compile(rb"[0-9]{11}")
    validate = staticmethod(pesel.is_valid)
