"""US Social Security numbers: no checksum, only SSA's structural rules, so context or ``123-45-6789``."""

from __future__ import annotations

import re2
from stdnum.us import ssn

from pipeline.detection.national import NationalIdDetector, id_keywords


class UsSsnDetector(NationalIdDetector):
    name = "us_ssn"
    country = "US"
    lengths = (9,)
    keywords = id_keywords("ssn", "social security", "soc sec", "ss#", "ss no", "ss number", "taxpayer")
    formats = re2.compile(rb"[0-9]{3}-[0-9]{2}-[0-9]{4}")
    validate = staticmethod(ssn.is_valid)
