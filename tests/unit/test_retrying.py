"""A Faust agent's batch runs again after a transient broker error (pipeline.context.retrying)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import (KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError,
                             NotLeaderForPartitionError)

from pipeline import context
from pipeline.context import retrying, transient


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "RETRY_FIRST_S", 0.001)
    monkeypatch.setattr(context, "RETRY_MAX_S", 0.004)


def _failing(errors: list[Exception], calls: list[int]):  # noqa: ANN202
    async def step() -> None:
        calls.append(1)
        if errors:
            raise errors.pop(0)
    return step


def test_transient_errors_are_retried_until_the_batch_completes() -> None:
    calls: list[int] = []
    errors = [KafkaConnectionError(), KafkaTimeoutError(), NotLeaderForPartitionError(), *[KafkaTimeoutError()] * 7]
    asyncio.run(retrying("record", _failing(errors, calls)))
    assert len(calls) == 11


@pytest.mark.parametrize("error", [MessageSizeTooLargeError(), ValueError("a bug")])
def test_other_errors_are_raised_at_once(error: Exception) -> None:
    calls: list[int] = []
    with pytest.raises(type(error)):
        asyncio.run(retrying("record", _failing([error], calls)))
    assert len(calls) == 1 and not transient(error)


def test_a_batch_whose_partitions_moved_on_is_given_up() -> None:
    calls: list[int] = []
    owned = [True, True, False]
    asyncio.run(retrying("decide", _failing([KafkaTimeoutError()] * 5, calls), lambda: owned.pop(0)))
    assert len(calls) == 3  # two retries while owned, then given up instead of a fourth attempt


def test_a_batch_is_current_while_every_message_is_of_the_groups_generation() -> None:
    from types import SimpleNamespace

    from pipeline.faustfix import current

    def app(active: bool, generation: int) -> SimpleNamespace:
        return SimpleNamespace(flow_control=SimpleNamespace(is_active=lambda: active), consumer_generation_id=generation)

    events = [SimpleNamespace(message=SimpleNamespace(generation_id=g)) for g in (4, 4)]
    assert current(app(True, 4), events)
    assert not current(app(True, 5), events)  # a rebalance since the batch was fetched
    assert not current(app(False, 4), events)  # flow stopped: a rebalance is going on
