"""A per-record detection budget: time and characters scanned. Overrun fails closed (the record is held)."""

from __future__ import annotations

import time


class DetectionBudgetExceeded(Exception):
    """A record needed more scanning than its budget allows; the caller holds the record.

    The message names the limit, never any content.
    """


class Budget:
    """Per-record limits; create one per record and pass it to every ``scan`` of that record's fields.

    The clock starts when the budget is created. ``max_chars`` counts every character scanned,
    including text decoded from base64, URL-encoding or JSON escapes, so nesting cannot multiply work
    without bound.
    """

    __slots__ = ("max_seconds", "max_chars", "chars", "_deadline", "_clock")

    def __init__(self, max_seconds: float | None = 0.25, max_chars: int | None = 4_000_000) -> None:
        self.max_seconds = max_seconds
        self.max_chars = max_chars
        self.chars = 0
        self._clock = time.perf_counter
        self._deadline = None if max_seconds is None else self._clock() + max_seconds

    def __repr__(self) -> str:
        return f"Budget(max_seconds={self.max_seconds}, max_chars={self.max_chars}, chars={self.chars})"

    def charge(self, chars: int) -> None:
        """Count ``chars`` more characters scanned, then :meth:`check`."""
        self.chars += chars
        if self.max_chars is not None and self.chars > self.max_chars:
            raise DetectionBudgetExceeded(
                f"detection scanned more than {self.max_chars} characters for one record"
            )
        self.check()

    def check(self) -> None:
        """Raise :class:`DetectionBudgetExceeded` once the time budget is spent."""
        if self._deadline is not None and self._clock() > self._deadline:
            raise DetectionBudgetExceeded(
                f"detection took longer than {self.max_seconds}s for one record"
            )
