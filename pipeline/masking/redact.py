"""``redact``: the whole value, of any type, becomes one constant string."""

from __future__ import annotations

from pipeline.masking.base import StrictParams, Strategy


class RedactParams(StrictParams):
    text: str = "[REDACTED]"


class Redact(Strategy):
    """Objects, arrays and nulls are redacted whole: nothing of their shape survives."""

    name = "redact"
    Params = RedactParams

    def mask(self, value: object) -> object:
        return self.params.text
