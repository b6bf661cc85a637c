"""The result of screening one record: exactly one outcome from a small closed set.

Plain slotted dataclasses, not pydantic: one is built per event on the hot path.
Nothing here holds a raw value of a masked field except ``RawRecord`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    CLEARED = "cleared"
    HELD = "held"
    REJECTED = "rejected"
    DEADLETTER = "deadletter"


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One ingress record as it came off the broker."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None

    @property
    def coordinates(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class Finding:
    """A detector's finding: the type and where, never the value."""

    type: str
    path: str


@dataclass(frozen=True, slots=True)
class MaskApplied:
    path: str
    strategy: str
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class EgressRecord:
    """A cleared record as one egress profile sends it: masked again by the profile's rules."""

    profile: str
    topic: str
    key: bytes | None
    value: bytes
    masked: tuple[MaskApplied, ...] = ()


@dataclass(slots=True)
class Decision:
    """What ``screen`` decided for one record.

    ``reason`` is a stable code (``invalid_json``, ``hold_rule:high-value``...) and ``detail`` a short
    payload-free explanation. ``value``/``key`` are the masked bytes for the cleared topic and
    ``preview`` the masked document shown to approvers; both are ``None`` unless computed.
    ``producer`` is the verified producer principal and ``egress`` the records of the egress profiles.
    """

    outcome: Outcome
    event_id: str
    reason: str = ""
    detail: str = ""
    value: bytes | None = None
    key: bytes | None = None
    findings: list[Finding] = field(default_factory=list)
    masked: list[MaskApplied] = field(default_factory=list)
    preview: dict[str, Any] | None = None
    producer: dict[str, Any] | None = None  # the verified producer: {"subject", "groups"}; None when off
    egress: list[EgressRecord] = field(default_factory=list)  # cleared only: one per egress profile
