"""The benchmark's padded events keep the outcome the generator labels them with, and weigh ~1 KB."""

from __future__ import annotations

import statistics

import pytest

from pipeline.benchmark.events import bench_events
from pipeline.plan import compile_plans
from pipeline.policy import load_policy
from pipeline.screen import screen
from schemas.decision import RawRecord
from tests.conftest import EXAMPLE_POLICY


@pytest.fixture(scope="module")
def events():
    return list(bench_events(600, seed=11))


def test_when_events_are_padded_then_they_average_about_one_kilobyte(events):
    assert 900 <= statistics.mean(len(e.value) for e in events) <= 1150


def test_when_padded_events_are_screened_then_each_has_the_generators_expected_outcome(events, keys):
    plans = compile_plans(load_policy(EXAMPLE_POLICY), keys)
    wrong = []
    for offset, event in enumerate(events):
        record = RawRecord(f"eu.raw.{event.dataset}", 0, offset, event.key, event.value, tuple(event.headers))
        decision = screen(record, plans[event.dataset])
        if decision.outcome.value != event.expected:
            wrong.append((event.event_id, event.expected, decision.outcome.value, decision.reason))
    assert not wrong, wrong[:5]
