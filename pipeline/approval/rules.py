"""The approval decision: a pure function from a hold, a decision and the approver to one verdict.

Checks, in order: the hold exists; the decision is well-formed and its id unused (single-use); the
hold is still open and not past its TTL; the token verified; the approver is in the dataset's
groups; the approver is not the producer (no exceptions, admins included); the decision is bound to
the held bytes and the policy; the justification is there when required; the approver has not
approved already. An approve that completes the quorum releases; one reject by an authorized
approver rejects; ``expire`` (sent by the timer) applies only to a hold past its TTL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pipeline.approval.state import FINAL, age_seconds, producer_subject
from pipeline.identity import IdentityError, Principal
from schemas.policy import Approval

DECISION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
ACTIONS = ("approve", "reject")
MAX_JUSTIFICATION = 2000

# reason code -> HTTP status the API answers with
REFUSALS: dict[str, int] = {
    "unknown_event": 404,
    "malformed_decision": 422,
    "replayed_decision": 409,
    "already_decided": 409,
    "hold_expired": 409,
    "unauthenticated": 401,
    "not_in_approver_groups": 403,
    "self_approval": 403,
    "payload_mismatch": 409,
    "policy_mismatch": 409,
    "justification_required": 422,
    "duplicate_approver": 409,
}


@dataclass(frozen=True)
class Verdict:
    """``refuse``, ``record`` (an approval towards the quorum), ``release``, ``reject``, ``expire``, ``noop``."""

    kind: str
    code: str = ""
    message: str = ""
    approver: dict[str, Any] | None = field(default=None)

    @property
    def http_status(self) -> int:
        return REFUSALS.get(self.code, 400) if self.kind == "refuse" else 200


def refuse(code: str, message: str, approver: dict[str, Any] | None = None) -> Verdict:
    return Verdict("refuse", code, message, approver)


def same_subject(a: str, b: str) -> bool:
    """Subjects compared without case, surrounding space or a Kafka ``User:`` prefix."""
    def norm(s: str) -> str:
        s = s.strip()
        return (s[5:] if s[:5].lower() == "user:" else s).strip().casefold()

    return norm(a) == norm(b)


def quorum_met(approvals: list[dict[str, Any]], approval: Approval) -> bool:
    """N distinct approvers; in ``all`` mode also one distinct approver per group (a matching)."""
    by_subject: dict[str, set[str]] = {}
    for a in approvals:
        by_subject.setdefault(a["subject"].casefold(), set()).update(set(a["groups"]) & set(approval.groups))
    if len(by_subject) < approval.required_approvals:
        return False
    if approval.mode == "any":
        return True
    matched: dict[str, str] = {}  # group -> subject

    def assign(subject: str, seen: set[str]) -> bool:
        for group in by_subject[subject]:
            if group in seen:
                continue
            seen.add(group)
            if group not in matched or assign(matched[group], seen):
                matched[group] = subject
                return True
        return False

    for subject in by_subject:
        assign(subject, set())
    return set(matched) == set(approval.groups)


def check_expiry(state: dict[str, Any] | None, approval: Approval | None, now_ms: int) -> Verdict:
    if state is None or state["status"] in FINAL or approval is None:
        return Verdict("noop")
    if age_seconds(state, now_ms) < approval.ttl_seconds:
        return Verdict("noop")
    return Verdict("expire", "expired", f"held longer than {approval.ttl_seconds}s without a decision")


def check_decision(state: dict[str, Any] | None, decision: dict[str, Any], approval: Approval | None,
                   identity: Principal | IdentityError | None, now_ms: int) -> Verdict:
    """The verdict on one approve/reject decision (``identity`` is the verified token, or why not)."""
    if state is None:
        return refuse("unknown_event", "no held event with this id on this worker's partitions")
    action = decision.get("action")
    decision_id = decision.get("decision_id")
    if not isinstance(decision_id, str) or not DECISION_ID.match(decision_id):
        return refuse("malformed_decision", "the decision needs a decision_id (1-128 of A-Z a-z 0-9 . _ : -)")
    if decision_id in state["used"]:
        return refuse("replayed_decision", "this decision id was already used; decisions are single-use")
    if action not in ACTIONS:
        return refuse("malformed_decision", "action must be approve or reject")
    if state["status"] == "expired":
        return refuse("hold_expired", "the hold expired before this decision")
    if state["status"] in FINAL:
        return refuse("already_decided", f"the hold was already {state['status']}")
    if approval is None:
        return refuse("not_in_approver_groups", "the dataset has no approval section; nobody may decide")
    if age_seconds(state, now_ms) >= approval.ttl_seconds:
        return refuse("hold_expired", f"the hold is older than its TTL ({approval.ttl_seconds}s)")
    if isinstance(identity, IdentityError) or identity is None:
        code = identity.code if isinstance(identity, IdentityError) else "malformed"
        message = identity.message if isinstance(identity, IdentityError) else "no token"
        return refuse("unauthenticated", f"token {code}: {message}")
    approver = {"subject": identity.subject, "groups": list(identity.groups), "issuer": identity.issuer}
    if not set(identity.groups) & set(approval.groups):
        return refuse("not_in_approver_groups",
                      f"the approver is in none of the dataset's groups ({', '.join(approval.groups)})", approver)
    producer = producer_subject(state)
    if producer is not None and same_subject(producer, identity.subject):
        return refuse("self_approval", "the approver produced this event; nobody decides on their own event",
                      approver)
    envelope = state["envelope"]
    if decision.get("payload_sha256") != envelope.get("raw_sha256"):
        return refuse("payload_mismatch", "the decision is bound to other bytes than the held payload", approver)
    if decision.get("policy_hash") != envelope.get("policy_hash"):
        return refuse("policy_mismatch", "the decision is bound to another policy than the hold's", approver)
    justification = decision.get("justification")
    if justification is not None and not isinstance(justification, str):
        return refuse("malformed_decision", "justification must be a string", approver)
    if justification and len(justification) > MAX_JUSTIFICATION:
        return refuse("malformed_decision", f"justification is longer than {MAX_JUSTIFICATION} characters", approver)
    if approval.require_justification and not (justification or "").strip():
        return refuse("justification_required", "the policy requires a justification", approver)
    if action == "reject":
        return Verdict("reject", "rejected_by_approver", "an approver rejected the held event", approver)
    if any(same_subject(a["subject"], identity.subject) for a in state["approvals"]):
        if quorum_met(state["approvals"], approval):  # quorum met but the release did not complete: retry
            return Verdict("release", "approved", "approvals complete", approver)
        return refuse("duplicate_approver", "this approver already approved; approvals must come from "
                      f"{approval.required_approvals} distinct people", approver)
    after = [*state["approvals"], {"subject": identity.subject, "groups": list(identity.groups)}]
    if quorum_met(after, approval):
        return Verdict("release", "approved", "approvals complete", approver)
    return Verdict("record", "approval_recorded", f"{len({a['subject'].casefold() for a in after})} of "
                   f"{approval.required_approvals} approvals", approver)
