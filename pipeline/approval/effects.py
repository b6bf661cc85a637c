"""What a verdict does: the next state, the outcome record and the provenance fragment. Pure functions.

Provenance fragments name the decision, its id, the approver (subject and groups, never the token)
and the destination coordinates; they never carry payload values.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from pipeline.approval.rules import Verdict
from pipeline.approval.state import MAX_REFUSALS, MAX_USED
from pipeline.outputs import Output, now_iso
from pipeline.plan import DatasetPlan
from schemas.decision import RawRecord

# verdict kind -> (provenance stage, provenance decision)
STAGES = {"refuse": ("approval", "refused"), "record": ("approval", "approval_recorded"),
          "reject": ("approval", "rejected"), "expire": ("expiry", "expired"), "release": ("release", "released")}


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def held_record(state: dict[str, Any]) -> RawRecord:
    """The exact held bytes as the ingress record they came from, for ``screen(..., release=True)``."""
    env = state["envelope"]
    source = env.get("source") or {}
    headers = tuple((str(k), _unb64(v) or b"") for k, v in env.get("raw_headers") or [])
    return RawRecord(source.get("topic", ""), int(source.get("partition", -1)), int(source.get("offset", -1)),
                     _unb64(env.get("raw_key_b64")), _unb64(env.get("raw_value_b64")), headers,
                     source.get("timestamp_ms"))


def _use(state: dict[str, Any], decision: dict[str, Any], result: str, source: dict[str, Any]) -> None:
    decision_id = decision.get("decision_id")
    if isinstance(decision_id, str) and decision_id:
        state["used"][decision_id[:128]] = {"result": result, "source": source}
        if len(state["used"]) > MAX_USED:  # a hold that is being flooded: keep the newest
            state["used"] = dict(list(state["used"].items())[-MAX_USED:])


def note_refusal(state: dict[str, Any] | None, decision: dict[str, Any], verdict: Verdict,
                 source: dict[str, Any]) -> dict[str, Any] | None:
    """The state after a refusal (``None`` when there is no hold to note it on)."""
    if state is None:
        return None
    state = {**state, "used": dict(state["used"]), "refusals": list(state["refusals"])}
    # A replayed id keeps its first result: the replay itself is noted as a refusal only.
    if verdict.code != "replayed_decision":
        _use(state, decision, f"refused:{verdict.code}", source)
    state["refusals"].append({
        "at": now_iso(), "decision_id": str(decision.get("decision_id"))[:128], "action": decision.get("action"),
        "code": verdict.code, "message": verdict.message, "approver": verdict.approver, "source": source,
    })
    state["refusals"] = state["refusals"][-MAX_REFUSALS:]
    return state


def note_approval(state: dict[str, Any], decision: dict[str, Any], verdict: Verdict,
                  source: dict[str, Any]) -> dict[str, Any]:
    state = {**state, "used": dict(state["used"]), "approvals": list(state["approvals"])}
    _use(state, decision, "approved", source)
    assert verdict.approver is not None
    if not any(a["subject"].casefold() == verdict.approver["subject"].casefold() for a in state["approvals"]):
        state["approvals"].append({
            "subject": verdict.approver["subject"], "groups": verdict.approver["groups"], "at": now_iso(),
            "decision_id": decision.get("decision_id"), "justification": decision.get("justification") or "",
        })
    return state


def finish(state: dict[str, Any], status: str, decision: dict[str, Any] | None, verdict: Verdict,
           destination: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """The final state: released, rejected, expired or deadletter, with where the record went."""
    state = {**state, "used": dict(state["used"]), "status": status}
    if decision is not None:
        _use(state, decision, status, source)
    state["outcome"] = {"status": status, "at": now_iso(), "reason": verdict.code, "by": verdict.approver,
                        "decision_id": decision.get("decision_id") if decision else None,
                        "justification": (decision or {}).get("justification") or "", "destination": destination}
    return state


def rejected_output(state: dict[str, Any], plan: DatasetPlan, reason: str, detail: str) -> Output:
    """The held envelope, re-stamped as rejected, for ``R.rejected.D`` (restricted, in-region)."""
    envelope = {k: v for k, v in state["envelope"].items() if k not in ("preview", "held_at_ms")}
    envelope.update(outcome="rejected", reason=reason, detail=detail, at=now_iso(),
                    held_reason=state["envelope"].get("reason"))
    headers = [("event-id", state["event_id"].encode()), ("policy-hash", plan.policy_hash.encode()),
               ("residency-region", plan.region.encode()), ("residency-decision", b"rejected")]
    return Output(plan.rejected_topic, state["event_id"].encode(), orjson.dumps(envelope), headers)


def fragment(state: dict[str, Any] | None, event_id: str, verdict: Verdict, decision: dict[str, Any] | None,
             source: dict[str, Any], destination: dict[str, Any] | None = None,
             decision_name: str | None = None, plan: DatasetPlan | None = None) -> dict[str, Any]:
    """The provenance fragment of one decide step (refusal, approval, release, reject or expiry)."""
    stage, name = STAGES[verdict.kind]
    envelope = (state or {}).get("envelope") or {}
    decision = decision or {}
    return {
        "event_id": event_id,
        "stage": stage,
        "at": now_iso(),
        "region": envelope.get("region") or (plan.region if plan else None),
        "dataset": envelope.get("dataset") or (plan.name if plan else None),
        "policy_hash": plan.policy_hash if plan else envelope.get("policy_hash"),
        "decision": decision_name or name,
        "reason": verdict.code,
        "detail": verdict.message,
        "decision_id": str(decision.get("decision_id"))[:128] if decision.get("decision_id") else None,
        "action": decision.get("action") if decision.get("action") in ("approve", "reject", "expire") else None,
        "approver": verdict.approver,
        "justification": (decision.get("justification") or "")[:2000] if verdict.kind != "refuse" else None,
        "source": source,
        "destination": destination or {"topic": None, "partition": None, "offset": None},
        "raw_sha256": envelope.get("raw_sha256"),
    }
