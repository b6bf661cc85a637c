"""Metrics.on_screened counts a batch once per series, with the same totals as counting each event."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from pipeline.benchmark.events import bench_events
from pipeline.metrics import Metrics
from pipeline.outputs import prepare
from pipeline.plan import compile_plans
from pipeline.policy import load_policy
from pipeline.screen import screen
from schemas.decision import RawRecord
from tests.conftest import EXAMPLE_POLICY


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for metric in registry.collect() for s in metric.samples
            if s.name.startswith("residency_") and s.name.endswith("_total")}


def test_when_a_batch_is_counted_then_each_series_equals_counting_event_by_event(keys) -> None:
    plans = compile_plans(load_policy(EXAMPLE_POLICY), keys)
    records = [RawRecord(f"eu.raw.{e.dataset}", 0, i, e.key, e.value, tuple(e.headers))
               for i, e in enumerate(bench_events(400, 7)) if e.dataset == "payments"]
    decisions = [screen(r, plans["payments"]) for r in records]
    assert len(decisions) > 100 and len({d.outcome for d in decisions}) >= 3
    # prepared from the same decisions: a second screening may differ (a detection budget is time)
    screened = [prepare(d, r, plans["payments"]) for d, r in zip(decisions, records, strict=True)]
    batched, one_by_one = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    batched.on_screened("payments", screened[:150])
    batched.on_screened("payments", screened[150:])
    for d in screened:
        one_by_one.on_screened("payments", [d])
    counted = _samples(batched.registry)
    assert counted == _samples(one_by_one.registry)
    events = sum(v for (name, _), v in counted.items() if name == "residency_events_total")
    assert events == len(decisions)
    assert sum(v for (name, _), v in counted.items() if name == "residency_findings_total") == \
        sum(len(d.findings) for d in decisions) > 0
    assert sum(v for (name, _), v in counted.items() if name == "residency_masked_fields_total") == \
        sum(len(d.masked) for d in decisions) > 0
