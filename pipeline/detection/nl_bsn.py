"""Dutch BSN: the 11-proof (about 1 in 11 pass), so context or ``1112.22.333``."""

from __future__ import annotations

import re2
from stdnum.nl import bsn

from pipeline.detection.national import NationalIdDetector, id_keywords


class NlBsnDetector(NationalIdDetector):
    name = "nl_bsn"
    country = "NL"
    lengths = (9,)
    keywords = id_keywords("bsn", "burgerservicenummer", "burger service nummer", "sofinummer", "sofi")
    formats = re2.compile(rb"[0-9]{4}\.[0-9]{2}\.[0-9]{3}")
    validate = staticmethod(bsn.is_valid)
