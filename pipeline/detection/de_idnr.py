"""German tax id (Steuer-IdNr): digit-frequency rules plus an ISO 7064 check; strong enough alone
(about 0.3% of random 11-digit numbers pass), but never inside an order or tracking number."""

from __future__ import annotations

from stdnum.de import idnr

from pipeline.detection.national import NationalIdDetector, id_keywords


class DeIdnrDetector(NationalIdDetector):
    name = "de_idnr"
    country = "DE"
    lengths = (11,)
    context = "never"
    keywords = id_keywords("steuer id", "steuerid", "steuer-idnr", "idnr", "steueridentifikationsnummer")
    validate = staticmethod(idnr.is_valid)

    def plausible(self, digits: str) -> bool:
        # No leading zero; in the first ten digits one digit repeats (so 8 or 9 distinct digits).
        return digits[0] != "0" and len(set(digits[:10])) in (8, 9)
