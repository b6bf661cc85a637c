"""Crash: kill -9 the worker at seeded random points, once while a batch is being sent.

Afterwards every event has exactly one outcome, the expected one, no event id is on an outcome
topic twice, and the provenance table has every event.
"""

from __future__ import annotations

import pytest

from tests.faults.scenarios import crash, say

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

EVENTS = 20_000


def test_when_the_worker_is_killed_three_times_then_every_event_has_one_outcome_once(fleet_factory, fault_seed):
    fleet = fleet_factory("crash")
    report = crash(fleet, EVENTS, seed=fault_seed, kills=3, mid_batch=1)
    say(report.line())

    assert report.kills >= 3  # more when a kill meant mid-batch landed between batches and was retried
    assert report.check.ok, f"seed {fault_seed}: {report.check.summary()}"
    assert report.mid_batch_kills >= 1, f"seed {fault_seed}: no kill landed mid-batch ({report.notes})"
