"""UK NHS numbers: mod 11 (about 1 in 11 random numbers pass), so context or ``943 476 5919``."""

from __future__ import annotations

import re2
from stdnum.gb import nhs

from pipeline.detection.national import NationalIdDetector, id_keywords


class GbNhsDetector(NationalIdDetector):
    name = "gb_nhs"
    country = "GB"
    lengths = (10,)
    keywords = id_keywords("nhs", "national health", "health service", "patient number", "patient no", "chi number")
    formats = re2.compile(rb"[0-9]{3} [0-9]{3} [0-9]{4}")
    validate = staticmethod(nhs.is_valid)
