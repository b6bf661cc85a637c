"""A consumer for cleared and egress topics that checks every record's attestation (aiokafka).

A record written straight to a cleared topic, bypassing the topology, carries no valid attestation:
``on_bad="drop"`` skips it (and counts it), ``on_bad="flag"`` yields it with its verdict so the
application decides. Only coordinates and verdicts are ever logged, never a payload.

    async with AttestedConsumer("eu.cleared.payments", bootstrap_servers=..., trusted=keys,
                                group_id="eu.consumer.analytics") as consumer:
        async for record in consumer:
            handle(record.message.value)
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.attestation import Verdict, VerifiedRoots, verify_record
from pipeline.audit.signing import load_public_keys

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AttestedRecord:
    message: Any  # aiokafka ConsumerRecord
    verdict: Verdict

    @property
    def coordinates(self) -> str:
        return f"{self.message.topic}:{self.message.partition}:{self.message.offset}"


def trusted_keys(pems: list[str | bytes]) -> dict[str, Ed25519PublicKey]:
    """Attestation public keys (PEM) by key id."""
    return load_public_keys(pems)


def check(message: Any, trusted: dict[str, Ed25519PublicKey], topic: str | None = None,
          roots: VerifiedRoots | None = None) -> AttestedRecord:
    """The verdict on one consumed record; ``topic`` overrides the record's (a mirrored topic);
    ``roots`` remembers batch signatures already checked (one per stream or topic read)."""
    verdict = verify_record(topic or message.topic, message.key, message.value, message.headers, trusted, roots)
    return AttestedRecord(message, verdict)


class AttestedConsumer:
    """An :class:`aiokafka.AIOKafkaConsumer` that yields only attested records (or flags the rest)."""

    def __init__(self, *topics: str, trusted: dict[str, Ed25519PublicKey],
                 on_bad: Literal["drop", "flag"] = "drop", **consumer_options: Any) -> None:
        if not trusted:
            raise ValueError("no trusted attestation key: every record would be refused")
        self.trusted = trusted
        self.on_bad = on_bad
        self.counts: Counter[str] = Counter()
        self.roots = VerifiedRoots()
        self._consumer = AIOKafkaConsumer(*topics, **consumer_options)

    async def __aenter__(self) -> AttestedConsumer:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    @property
    def consumer(self) -> AIOKafkaConsumer:
        return self._consumer

    def admit(self, message: Any) -> AttestedRecord | None:
        """The record to hand on, or ``None`` when it is dropped."""
        record = check(message, self.trusted, roots=self.roots)
        self.counts[record.verdict.status] += 1
        if record.verdict.ok:
            return record
        log.warning("unattested record %s: %s", record.coordinates, record.verdict.status)
        return record if self.on_bad == "flag" else None

    async def __aiter__(self) -> AsyncIterator[AttestedRecord]:
        async for message in self._consumer:
            record = self.admit(message)
            if record is not None:
                yield record

    async def getmany(self, timeout_ms: int = 1000) -> list[AttestedRecord]:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        out = []
        for messages in batches.values():
            for message in messages:
                record = self.admit(message)
                if record is not None:
                    out.append(record)
        return out
