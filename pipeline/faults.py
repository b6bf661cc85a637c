"""Test-only fault injection into the screening stages (``screen(..., fault=hook)``).

Built from settings only when ``RESIDENCY_ENABLE_TEST_HOOKS=1``; otherwise ``RESIDENCY_TEST_FAULTS``
is ignored (with a warning at start-up), so a stray variable can never break a production fleet.

Spec: comma-separated ``stage:action`` with stage one of ``policy``, ``masking``, ``detection`` and
action one of ``raise`` (a ``RuntimeError``), ``timeout`` (a ``TimeoutError``, as a stage's own
timeout would raise) or ``delay:SECONDS`` (the stage is slow: it spends the record's screening
budget). ``@PATH`` reads the spec from a file instead, re-read when it changes, so one worker can
run several fault phases; an empty spec (or file) injects nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

STAGES = ("policy", "masking", "detection")
RECHECK_S = 0.2


class FaultSpecError(ValueError):
    """The fault spec does not parse; the message names the bad part."""


class InjectedFault(RuntimeError):
    """Raised by the ``raise`` action."""


@dataclass(frozen=True)
class Fault:
    action: str
    seconds: float = 0.0

    def fire(self, stage: str) -> None:
        if self.action == "raise":
            raise InjectedFault(f"injected fault in {stage}")
        if self.action == "timeout":
            raise TimeoutError(f"injected timeout in {stage}")
        time.sleep(self.seconds)


def parse_spec(spec: str) -> dict[str, Fault]:
    faults: dict[str, Fault] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        stage, _, rest = part.partition(":")
        action, _, arg = rest.partition(":")
        if stage not in STAGES:
            raise FaultSpecError(f"unknown stage {stage!r} in {part!r}; expected one of {', '.join(STAGES)}")
        if action in ("raise", "timeout") and not arg:
            faults[stage] = Fault(action)
        elif action == "delay":
            try:
                faults[stage] = Fault("delay", float(arg))
            except ValueError:
                raise FaultSpecError(f"delay needs seconds, as in {stage}:delay:0.5; got {part!r}") from None
        else:
            raise FaultSpecError(f"unknown action in {part!r}; expected raise, timeout or delay:SECONDS")
    return faults


class FileSpec:
    """A spec kept in a file, re-read when its modification time changes (checked every RECHECK_S)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._checked = 0.0
        self._mtime: int | None = None
        self.faults: dict[str, Fault] = {}

    def current(self) -> dict[str, Fault]:
        now = time.monotonic()
        if now - self._checked >= RECHECK_S:
            self._checked = now
            try:
                mtime = os.stat(self.path).st_mtime_ns
            except FileNotFoundError:
                mtime = None
            if mtime != self._mtime:
                self._mtime = mtime
                self.faults = parse_spec(self.path.read_text()) if mtime is not None else {}
        return self.faults


def fault_hook(spec: str | None) -> Callable[[str], None] | None:
    """The hook for ``screen``; None when the spec is empty."""
    if not spec:
        return None
    if spec.startswith("@"):
        source = FileSpec(Path(spec[1:]))
        source.current()  # a bad file fails at start-up, not on the first record

        def from_file(stage: str) -> None:
            fault = source.current().get(stage)
            if fault is not None:
                fault.fire(stage)

        return from_file
    faults = parse_spec(spec)

    def fixed(stage: str) -> None:
        fault = faults.get(stage)
        if fault is not None:
            fault.fire(stage)

    return fixed
