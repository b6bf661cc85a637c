"""Shared rules for national identifiers, so each country's module is a short declaration.

A national id must be its own token (not glued into ``ORD-...``) and not introduced as an order,
tracking or SKU number. Beyond its checksum it needs, depending on how weak the checksum is:

* ``"never"``: nothing more (strong checks such as FR NIR's mod 97 or DE IdNr's digit rules);
* ``"unless_formatted"``: a context keyword nearby, or the number written in its customary format;
* ``"always"``: a context keyword nearby (or in the scan hint, e.g. the field name).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import re2

from pipeline.detection.base import DigitDetector, ScanContext, Window, keywords

# Words that introduce any national identifier, in the languages of the supported countries.
GENERIC_ID_WORDS = (
    "national id", "national identity", "id number", "id no", "id nr", "id#", "identity number",
    "identification number", "personal number", "personal id", "citizen", "tax id", "tin",
    "identifikationsnummer", "identifiant", "identificacion", "identificativo", "identiteit",
    "identyfikac", "numer identyfikacyjny",
)


class NationalIdDetector(DigitDetector):
    """A digit-window detector for a national identifier validated by a python-stdnum module."""

    context: ClassVar[str] = "unless_formatted"  # or "never" / "always"
    keywords: ClassVar[re2._Regexp]
    formats: ClassVar[re2._Regexp | None] = None  # full-match on the view text of the window
    validate: ClassVar[Callable[[str], bool]]

    def confirm(self, ctx: ScanContext, digits: str, window: Window) -> bool:
        start, end = window.start, window.end
        if not (ctx.isolated(start, end) and type(self).validate(digits)):
            return False
        if ctx.labelled_not_personal(start):
            return False
        if self.context == "never":
            return True
        if ctx.near(self.keywords, start, end):
            return True
        return self.context == "unless_formatted" and self.formatted(ctx, start, end)

    def formatted(self, ctx: ScanContext, start: int, end: int) -> bool:
        return self.formats is not None and self.formats.fullmatch(ctx.data[start:end]) is not None


def id_keywords(*words: str) -> re2._Regexp:
    """Context keywords for one identifier plus the generic ones."""
    return keywords(*words, *GENERIC_ID_WORDS)
