"""Fail closed: an exception or a timeout in policy evaluation, masking or detection never clears.

One worker with the test-only fault hook reading its spec from a file (pipeline/faults.py); each phase
injects one fault and sends records that would otherwise be cleared. While a fault is active no
record reaches a cleared topic: an exception dead-letters (internal_error), a timeout or a stage that
overruns the record's screening budget holds (detection_budget_exceeded). A last phase without faults
clears the same kind of records, so the faults, not the records, made the difference.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import orjson
import pytest

from pipeline.harness import collect, produce, read_topic
from tests.faults.scenarios import EndOffsets, mixed_events, ready, say, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BUDGET_MS = 300  # generous enough that a plain record never overruns it on a loaded 2-core box
PHASES = [(f"{stage}:{action}", expected, reason)
          for stage in ("policy", "masking", "detection")
          for action, expected, reason in (("raise", "deadletter", "internal_error"),
                                           ("timeout", "held", "detection_budget_exceeded"),
                                           (f"delay:{BUDGET_MS * 2 / 1000}", "held", "detection_budget_exceeded"))]
PER_PHASE = 12


def _cleared_events(phase: int, seed: int) -> list:
    events = [e for e in mixed_events(PER_PHASE * 3, seed + phase) if e.expected == "cleared"][:PER_PHASE]
    out = []
    for e in events:
        event_id = f"fc{phase}-{e.event_id}"
        out.append(dataclasses.replace(e, event_id=event_id, headers=[("event-id", event_id.encode())]))
    return out


def test_when_a_stage_fails_or_times_out_then_no_record_is_cleared(fleet_factory, tmp_path, fault_seed):
    budget = f"    detection_budget_ms: {BUDGET_MS}\n    unexpected_pii: mask\n"
    fleet = fleet_factory("fail", replace={  # a short budget for both datasets, so a slow stage overruns it
        "    unexpected_pii: mask\n    hold:": budget + "    hold:",
        "    unexpected_pii: mask\n    residency:\n      field: customer": budget + "    residency:\n      field: customer"})
    spec = tmp_path / "faults.spec"
    spec.write_text("")
    worker = fleet.worker("w1", {"RESIDENCY_ENABLE_TEST_HOOKS": "1", "RESIDENCY_TEST_FAULTS": f"@{spec}"})
    wait_until(lambda: ready(worker), 90, "the worker to be ready")
    cleared_topics = [fleet.names.cleared(d) for d in fleet.loaded.policy.datasets]

    async def cleared_count() -> int:
        async with EndOffsets(fleet.bootstrap) as offsets:
            return await offsets.total(cleared_topics)

    cleared_before = asyncio.run(cleared_count())
    for phase, (fault, expected, reason) in enumerate(PHASES):
        spec.write_text(fault)
        time.sleep(0.5)  # longer than the hook's re-read interval
        events = _cleared_events(phase, fault_seed)
        asyncio.run(produce(fleet.bootstrap, fleet.region, events))
        ids = {e.event_id for e in events}
        found = asyncio.run(collect(fleet.bootstrap, fleet.loaded.policy, ids, timeout_s=60))
        got = {e: found.of(e) for e in ids}
        say(f"fail closed: {fault}: {sorted({o for v in got.values() for o in v})}")
        assert all(v == {expected} for v in got.values()), (fault, got)
        assert asyncio.run(cleared_count()) == cleared_before, f"{fault}: a record reached a cleared topic"
        assert worker.alive, worker.log_tail()

    reasons = {orjson.loads(m.value)["event_id"]: orjson.loads(m.value)["reason"]
               for name in (fleet.names.deadletter, fleet.names.held) for m in asyncio.run(read_topic(fleet.bootstrap, name))}
    for phase, (fault, _, reason) in enumerate(PHASES):
        assert {reasons[e.event_id] for e in _cleared_events(phase, fault_seed)} == {reason}, fault

    spec.write_text("")
    time.sleep(0.5)
    events = _cleared_events(len(PHASES), fault_seed)
    asyncio.run(produce(fleet.bootstrap, fleet.region, events))
    found = asyncio.run(collect(fleet.bootstrap, fleet.loaded.policy, {e.event_id for e in events}, timeout_s=60))
    assert all(found.of(e.event_id) == {"cleared"} for e in events)
