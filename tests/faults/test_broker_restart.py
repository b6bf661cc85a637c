"""Broker restart: a dedicated broker is stopped mid-stream and started again on the same data dir.

The worker keeps running (same process), reports not ready while the broker is away and ready once
it is back, and every event, before and after the restart, has exactly one outcome, once.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from pipeline.broker import LocalKafka, free_ports
from pipeline.harness import outcome_topics, produce
from tests.faults.scenarios import EndOffsets, check_events, http, mixed_events, ready, say, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

BEFORE, AFTER = 6_000, 2_000


def _outcomes(fleet) -> int:  # noqa: ANN001
    async def total() -> int:
        async with EndOffsets(fleet.bootstrap) as offsets:
            return await offsets.total(outcome_topics(fleet.loaded.policy))
    return asyncio.run(total())


def test_when_the_broker_restarts_mid_stream_then_the_worker_reconnects_and_nothing_is_lost(
        fleet_factory, tmp_path, fault_seed):
    port, controller = free_ports(2)
    kafka = LocalKafka(tmp_path / "kafka", port=port, controller_port=controller)
    kafka.start(die_with_parent=True)
    try:
        fleet = fleet_factory("brk", bootstrap=kafka.bootstrap)
        first = mixed_events(BEFORE + AFTER, fault_seed)
        first, second = first[:BEFORE], first[BEFORE:]
        asyncio.run(produce(fleet.bootstrap, fleet.region, first))
        worker = fleet.worker("w1")
        wait_until(lambda: _outcomes(fleet) >= BEFORE // 4, 120, "a quarter of the outcomes", interval=0.1)

        kafka.stop()
        stopped = time.monotonic()
        status = wait_until(lambda: http(worker, "/health/ready")[0] or None, 10, "an answer from the worker")
        not_ready = wait_until(lambda: http(worker, "/health/ready")[0] == 503, 45, "readiness to turn 503")
        say(f"broker down: the worker answered {status}, then 503 after {time.monotonic() - stopped:.1f}s")
        assert not_ready and worker.alive, worker.log_tail()
        time.sleep(5)  # stay down a while: clients retry, connections fail

        kafka.start(die_with_parent=True)
        restarted = time.monotonic()
        wait_until(lambda: ready(worker), 120, "readiness back to 200 after the broker restart", interval=0.5)
        say(f"broker back: ready again after {time.monotonic() - restarted:.1f}s")
        assert worker.alive, worker.log_tail()

        asyncio.run(produce(fleet.bootstrap, fleet.region, second))
        check = check_events(fleet.bootstrap, fleet.loaded, first + second, timeout_s=180)
        assert check.ok, f"seed {fault_seed}: {check.summary()}"
        assert worker.alive and worker.proc.pid == fleet.started[0].proc.pid, "the worker process was replaced"
    finally:
        if "fleet" in locals():
            fleet.stop_all()  # before the broker, so workers do not wait for it at shutdown
        kafka.stop()
