"""``residency mask``: screen JSON Lines offline with exactly the code the agents run."""

from __future__ import annotations

from typing import IO

import orjson

from pipeline.keys import KeyRing
from pipeline.plan import compile_plans
from pipeline.policy import LoadedPolicy
from pipeline.screen import screen
from schemas.decision import Decision, Outcome, RawRecord


def _line_result(decision: Decision) -> dict:
    event = None
    if decision.outcome is Outcome.CLEARED and decision.value is not None:
        event = orjson.loads(decision.value)
    elif decision.preview is not None:
        event = decision.preview
    return {
        "decision": decision.outcome.value,
        "reason": decision.reason,
        "detail": decision.detail,
        "event": event,
        "findings": [{"type": f.type, "path": f.path} for f in decision.findings],
    }


def mask_stream(loaded: LoadedPolicy, keys: KeyRing, dataset: str, source: IO[bytes], sink: IO[bytes]) -> int:
    """One JSON line out per line in; bad lines get a dead-letter decision and processing goes on."""
    plans = compile_plans(loaded, keys)
    if dataset not in plans:
        raise SystemExit(f"dataset {dataset!r} is not in the policy; expected one of {sorted(plans)}")
    plan = plans[dataset]
    for number, line in enumerate(source, start=1):
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        record = RawRecord(plan.raw_topic, 0, number, None, line)
        sink.write(orjson.dumps(_line_result(screen(record, plan, check_identity=False))) + b"\n")
    sink.flush()
    return 0
