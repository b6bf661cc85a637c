"""``drop``: the key or array element is removed from the document."""

from __future__ import annotations

from pipeline.masking.base import Strategy
from pipeline.paths import DROP


class Drop(Strategy):
    name = "drop"

    def mask(self, value: object) -> object:
        return DROP
