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

from pipeline.detection import rx
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
        # Cheapest checks first: deep inside a long run most windows fail before any checksum.
        start, end = window.start, window.end
        if not (self.plausible(digits) and ctx.isolated(start, end)):
            return False
        if self.context != "never" and not (self.labelled(ctx, window) or self.formatted(ctx, start, end)):
            return False
        return not ctx.labelled_not_personal(start) and type(self).validate(digits)

    def plausible(self, digits: str) -> bool:
        """A cheap pre-check before the stdnum validator; subclasses narrow it."""
        return True

    def labelled(self, ctx: ScanContext, window: Window) -> bool:
        """A keyword near the window (only possible near the ends of its run) or in the hint."""
        run = window.run
        if window.start - run.start <= 48 or run.end - window.end <= 24:
            return ctx.near(self.keywords, window.start, window.end)
        return ctx.hint_has(self.keywords)

    def formatted(self, ctx: ScanContext, start: int, end: int) -> bool:
        if self.context != "unless_formatted" or self.formats is None or end - start > 16:
            return False
        return rx.fullmatch(self.formats, ctx.data[start:end])


def id_keywords(*words: str) -> re2._Regexp:
    """Context keywords for one identifier plus the generic ones."""
    return keywords(*words, *GENERIC_ID_WORDS)
