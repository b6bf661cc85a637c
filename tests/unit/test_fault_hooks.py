"""The test-only fault hook: parsed from settings, honoured only when test hooks are enabled."""

from __future__ import annotations

import os
import time

import orjson
import pytest

from pipeline.faults import FaultSpecError, InjectedFault, fault_hook, parse_spec
from pipeline.plan import compile_plans
from pipeline.screen import screen
from pipeline.settings import Settings
from pipeline.worker import StartupRefused, _test_fault_hook
from schemas.decision import Outcome, RawRecord

PAYMENT = orjson.dumps({"payment_id": "p1", "amount": 12, "currency": "EUR", "subject": {"country": "DE"}})


@pytest.fixture
def plan(policy_factory, keys):
    return compile_plans(policy_factory(replace={"    scan_unlisted: true\n    unexpected_pii: mask\n    hold:":
                                                 "    scan_unlisted: false\n    unexpected_pii: mask\n    hold:"}),
                         keys)["payments"]


def _record() -> RawRecord:
    return RawRecord("eu.raw.payments", 0, 7, b"k", PAYMENT, ())


@pytest.mark.parametrize("stage", ["policy", "masking", "detection"])
@pytest.mark.parametrize(("action", "outcome"), [("raise", Outcome.DEADLETTER), ("timeout", Outcome.HELD)])
def test_when_a_stage_fails_then_the_record_is_never_cleared(plan, stage, action, outcome):
    decision = screen(_record(), plan, fault_hook(f"{stage}:{action}"))
    assert decision.outcome is outcome


@pytest.mark.parametrize("stage", ["policy", "masking"])
def test_when_a_stage_overruns_the_budget_with_nothing_to_scan_then_the_record_is_held(plan, stage):
    # scan_unlisted is off: no detection runs, so only the final budget check can catch the overrun
    slow = fault_hook(f"{stage}:delay:{plan.rules.detection_budget_ms / 1000 + 0.05}")
    decision = screen(_record(), plan, slow)
    assert (decision.outcome, decision.reason) == (Outcome.HELD, "detection_budget_exceeded")


def test_when_the_spec_is_bad_then_it_names_the_bad_part():
    with pytest.raises(FaultSpecError, match="unknown stage 'identity'"):
        parse_spec("identity:raise")
    with pytest.raises(FaultSpecError, match="delay needs seconds"):
        parse_spec("masking:delay:soon")
    with pytest.raises(FaultSpecError, match="unknown action"):
        parse_spec("masking:explode")


def test_when_the_spec_is_a_file_then_changes_apply_without_a_restart(tmp_path):
    path = tmp_path / "faults"
    path.write_text("")
    hook = fault_hook(f"@{path}")
    hook("detection")  # nothing injected
    path.write_text("detection:raise")
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    time.sleep(0.25)
    with pytest.raises(InjectedFault):
        hook("detection")
    hook("masking")


def test_when_test_hooks_are_not_enabled_then_the_fault_spec_is_ignored():
    assert _test_fault_hook(Settings(test_faults="detection:raise")) is None
    assert _test_fault_hook(Settings(test_faults="detection:raise", enable_test_hooks=True)) is not None
    with pytest.raises(StartupRefused, match="RESIDENCY_TEST_FAULTS"):
        _test_fault_hook(Settings(test_faults="detection:boom", enable_test_hooks=True))
