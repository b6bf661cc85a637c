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
