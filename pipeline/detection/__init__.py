"""Free-text detection of personal data, confirmed by real checks, resistant to common evasions.

``scan(text, budget)`` returns typed spans in the original string; ``redact_spans`` applies them.
Detectors are small registered classes, one per module, each with ``name`` and ``country``.
"""

from __future__ import annotations

# Importing a module registers its detectors.
from pipeline.detection import (  # noqa: F401
    card,
    de_idnr,
    email,
    es_dni,
    es_nie,
    fr_nir,
    gb_nhs,
    iban,
    ipv4,
    ipv6,
    it_codice_fiscale,
    nl_bsn,
    phone,
    pl_pesel,
    se_personnummer,
    us_ssn,
)
from pipeline.detection.base import Detector, Span, registry
from pipeline.detection.budget import Budget, DetectionBudgetExceeded
from pipeline.detection.engine import ENCODED, redact_spans, scan
from pipeline.detection.record import scan_each

__all__ = [
    "ENCODED",
    "Budget",
    "DetectionBudgetExceeded",
    "Detector",
    "Span",
    "detector_names",
    "detectors",
    "redact_spans",
    "scan",
    "scan_each",
]


def detector_names() -> list[str]:
    """Every registered detector name, sorted."""
    return sorted(registry())


def detectors() -> dict[str, type[Detector]]:
    """Detector classes by name (``cls.country`` says which country each serves)."""
    return dict(registry())
