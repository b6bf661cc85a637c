"""The screen stage's rebalance bookkeeping: which fetched batches it screens and which it drops.

A batch is dropped unscreened when a rebalance came between its fetch and its processing (its
records are fetched again from the committed offsets). A rebalance *during* the fetch is different:
aiokafka resets the positions on the new assignment and the fetch returns records from there, so
that batch must be screened; dropping it lost them (two workers starting together lost the first
500 records of a partition, docs/benchmarks.md, session 9).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiokafka import TopicPartition

from agents.screen import ScreenStage

TP = TopicPartition("eu.raw.payments", 0)


def _stage() -> ScreenStage:
    ctx = SimpleNamespace(plans={}, screen=None, effects=SimpleNamespace(forget=lambda: None),
                          settings=SimpleNamespace(batch_size=500))
    return ScreenStage(ctx)


class _Consumer:
    """Returns one batch per ``getmany``; ``during`` runs while the fetch waits (a rebalance)."""

    def __init__(self, during=None) -> None:  # noqa: ANN001
        self.during = during

    async def getmany(self, timeout_ms: int, max_records: int) -> dict:  # noqa: ARG002
        if self.during is not None:
            await self.during()
        return {TP: [SimpleNamespace(offset=0)]}


def test_a_batch_fetched_across_a_rebalance_is_screened_not_dropped() -> None:
    async def run() -> None:
        stage = _stage()
        ahead = await stage._fetch(_Consumer(during=lambda: stage.on_partitions_revoked(set())), 50)
        assert stage._generation == 1  # the revocation happened during the fetch
        assert ahead.generation == stage._generation, "dropped as stale: its records would never be screened"

    asyncio.run(run())


def test_a_batch_fetched_before_a_rebalance_is_dropped() -> None:
    async def run() -> None:
        stage = _stage()
        ahead = await stage._fetch(_Consumer(), 50)
        await stage.on_partitions_revoked(set())  # the new owner fetches it again from the committed offset
        assert ahead.generation != stage._generation

    asyncio.run(run())
