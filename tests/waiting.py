"""Waiting for a condition with a deadline (never a fixed sleep), shared by every test suite."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Deadline(AssertionError):
    """A condition did not come true in time (an assertion failure in the test's report)."""


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy and return that, or raise
    :class:`Deadline` after ``timeout`` seconds naming ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise Deadline(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
