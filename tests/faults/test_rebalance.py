"""Rebalance: a second worker joins mid-stream, then the first is killed -9; the survivor finishes.

Every event has exactly one outcome, once, and provenance; the survivor ends owning every source
partition with zero consumer lag within LAG_BOUND_S of the kill (measured, see docs/faults.md).
"""

from __future__ import annotations

import pytest

from tests.faults.scenarios import rebalance, say

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

EVENTS = 8_000
LAG_BOUND_S = 60  # session timeout (10 s) + rebalance + table recovery + the backlog; measured 25-35 s


def test_when_a_worker_joins_and_the_first_is_killed_then_the_survivor_finishes_every_event_once(
        fleet_factory, fault_seed):
    fleet = fleet_factory("rebal")
    report = rebalance(fleet, EVENTS, seed=fault_seed, lag_bound_s=LAG_BOUND_S)
    say(report.line())

    assert report.check.ok, f"seed {fault_seed}: {report.check.summary()}"
    assert report.lag_recovery_s <= LAG_BOUND_S, f"seed {fault_seed}: lag back to zero only after {report.lag_recovery_s:.0f}s"
    assert "owned 0 " not in report.notes[0], "the second worker never took partitions before the kill"
