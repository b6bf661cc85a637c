"""The pure approval decision: every abuse case refused with its reason, quorums counted by person."""

from __future__ import annotations

import base64
import hashlib
import time

import pytest

from pipeline.approval import effects
from pipeline.approval.rules import check_decision, check_expiry, quorum_met
from pipeline.approval.state import new_state, public_view, safe_preview, summary
from pipeline.identity import IdentityError, Principal
from schemas.policy import Approval

RAW = b'{"payment_id":"p1","amount":25000,"card":{"number":"4111111111111111"}}'
POLICY_HASH = "sha256:" + "a" * 64


def _state(producer=None, age_s: float = 10, **extra) -> dict:
    envelope = {
        "event_id": "e-1", "dataset": "payments", "region": "eu", "policy_hash": POLICY_HASH,
        "reason": "hold_rule:high-value", "detail": "a hold rule matched", "raw_sha256": hashlib.sha256(RAW).hexdigest(),
        "raw_value_b64": base64.b64encode(RAW).decode(), "raw_key_b64": None,
        "raw_headers": [["event-id", base64.b64encode(b"e-1").decode()]],
        "source": {"topic": "eu.raw.payments", "partition": 0, "offset": 7, "timestamp_ms": 1},
        "preview": {"payment_id": "p1", "card": {"number": "************1111"}, "note": "mail jane@example.com"},
        "held_at_ms": int((time.time() - age_s) * 1000), "producer": producer, **extra,
    }
    return new_state(envelope, {"topic": "eu.held", "partition": 0, "offset": 3})


def _who(subject: str, *groups: str) -> Principal:
    return Principal(subject, tuple(groups), "idp", None, int(time.time()) + 600)


def _decision(state: dict, action: str = "approve", **over) -> dict:
    return {"decision_id": over.pop("decision_id", "d-1"), "event_id": "e-1", "action": action,
            "justification": "checked", "payload_sha256": state["envelope"]["raw_sha256"],
            "policy_hash": POLICY_HASH, **over}


ONE = Approval(groups=["payments-approvers"], ttl_seconds=3600)
NOW = lambda: int(time.time() * 1000)  # noqa: E731


def _code(state, decision, identity, approval=ONE) -> str:
    verdict = check_decision(state, decision, approval, identity, NOW())
    assert verdict.kind == "refuse", verdict
    return verdict.code


def test_when_an_authorized_approver_approves_then_the_hold_is_released():
    state = _state()
    verdict = check_decision(state, _decision(state), ONE, _who("alice", "payments-approvers"), NOW())
    assert (verdict.kind, verdict.approver["subject"]) == ("release", "alice")


def test_when_an_authorized_approver_rejects_then_the_hold_is_rejected():
    state = _state()
    assert check_decision(state, _decision(state, "reject"), ONE, _who("a", "payments-approvers"), NOW()).kind == "reject"


@pytest.mark.parametrize("code", ["expired", "not_yet_valid", "bad_signature", "wrong_issuer", "wrong_audience",
                                  "unknown_key", "malformed"])
def test_when_the_token_failed_verification_then_the_decision_is_unauthenticated(code):
    state = _state()
    verdict = check_decision(state, _decision(state), ONE, IdentityError(code, "why"), NOW())
    assert (verdict.kind, verdict.code) == ("refuse", "unauthenticated") and code in verdict.message


def test_when_the_approver_is_outside_the_groups_then_it_is_refused():
    assert _code(_state(), _decision(_state()), _who("bob", "sales")) == "not_in_approver_groups"


@pytest.mark.parametrize("producer", [{"subject": "alice", "groups": []}, {"subject": "User:ALICE "}, "alice"])
def test_when_the_producer_approves_their_own_event_then_it_is_refused_admins_included(producer):
    state = _state(producer=producer)
    who = _who("alice", "payments-approvers", "admins", "privacy-office")
    assert _code(state, _decision(state), who) == "self_approval"
    assert _code(state, _decision(state, "reject"), who) == "self_approval"


def test_when_the_producer_is_unknown_then_an_approver_may_decide():
    state = _state(producer=None)
    assert check_decision(state, _decision(state), ONE, _who("alice", "payments-approvers"), NOW()).kind == "release"


def test_when_the_decision_is_bound_to_other_bytes_or_policy_then_it_is_refused():
    state = _state()
    who = _who("alice", "payments-approvers")
    assert _code(state, _decision(state, payload_sha256="0" * 64), who) == "payload_mismatch"
    assert _code(state, _decision(state, payload_sha256=None), who) == "payload_mismatch"
    assert _code(state, _decision(state, policy_hash="sha256:" + "b" * 64), who) == "policy_mismatch"


def test_when_a_decision_id_is_replayed_then_it_is_refused():
    state = _state()
    who = _who("alice", "payments-approvers")
    two = Approval(groups=["payments-approvers"], required_approvals=2)
    noted = effects.note_approval(state, _decision(state), check_decision(state, _decision(state), two, who, NOW()), {})
    other = _who("bob", "payments-approvers")
    assert _code(noted, _decision(noted), other, two) == "replayed_decision"


def test_when_the_same_person_approves_twice_then_it_counts_once():
    two = Approval(groups=["payments-approvers"], required_approvals=2)
    state = _state()
    alice = _who("alice", "payments-approvers")
    first = check_decision(state, _decision(state), two, alice, NOW())
    assert first.kind == "record"
    state = effects.note_approval(state, _decision(state), first, {})
    assert _code(state, _decision(state, decision_id="d-2"), _who("ALICE", "payments-approvers"), two) == \
        "duplicate_approver"
    assert check_decision(state, _decision(state, decision_id="d-3"), two, _who("bob", "payments-approvers"),
                          NOW()).kind == "release"


def test_when_the_hold_is_past_its_ttl_then_decisions_are_refused_and_it_expires():
    state = _state(age_s=4000)
    assert _code(state, _decision(state), _who("alice", "payments-approvers")) == "hold_expired"
    assert check_expiry(state, ONE, NOW()).kind == "expire"
    assert check_expiry(_state(age_s=10), ONE, NOW()).kind == "noop"
    expired = effects.finish(state, "expired", None, check_expiry(state, ONE, NOW()), {}, {})
    assert _code(expired, _decision(expired), _who("alice", "payments-approvers")) == "hold_expired"


def test_when_the_hold_was_decided_then_later_decisions_are_refused():
    state = effects.finish(_state(), "released", None, check_expiry(_state(age_s=4000), ONE, NOW()), {}, {})
    assert _code(state, _decision(state, decision_id="d-9"), _who("bob", "payments-approvers")) == "already_decided"


def test_when_the_policy_requires_a_justification_then_an_empty_one_is_refused():
    state = _state()
    for justification in (None, "", "   "):
        assert _code(state, _decision(state, justification=justification),
                     _who("alice", "payments-approvers")) == "justification_required"
    optional = Approval(groups=["payments-approvers"], require_justification=False)
    assert check_decision(state, _decision(state, justification=""), optional,
                          _who("alice", "payments-approvers"), NOW()).kind == "release"


def test_when_there_is_no_hold_or_the_decision_is_malformed_then_it_is_refused():
    assert _code(None, {"decision_id": "x"}, _who("a", "payments-approvers")) == "unknown_event"
    state = _state()
    assert _code(state, _decision(state, decision_id=""), _who("a", "payments-approvers")) == "malformed_decision"
    assert _code(state, _decision(state, "delete"), _who("a", "payments-approvers")) == "malformed_decision"


@pytest.mark.parametrize(("approvers", "met"), [
    ([("a", ["g1", "g2"])], False),                 # one person cannot stand for two groups
    ([("a", ["g1"]), ("b", ["g1"])], False),        # two people, one group covered
    ([("a", ["g1"]), ("b", ["g2"])], True),
    ([("a", ["g1", "g2"]), ("b", ["g1"])], True),   # a covers g2, b covers g1
])
def test_when_mode_is_all_then_each_group_needs_its_own_approver(approvers, met):
    approval = Approval(groups=["g1", "g2"], mode="all", required_approvals=1)
    assert quorum_met([{"subject": s, "groups": g} for s, g in approvers], approval) is met


def test_when_a_hold_is_viewed_then_no_raw_bytes_or_detected_values_are_shown():
    state = _state()
    view = public_view(state, ONE)
    text = str(view)
    assert "raw_value_b64" not in view and "4111111111111111" not in text
    assert "jane@example.com" not in text and "[email]" in text
    assert view["header_names"] == ["event-id"]
    assert summary(state, 1)["preview"]["card"]["number"] == "************1111"
    assert safe_preview(None) is None


def test_when_a_hold_is_released_then_the_exact_held_bytes_are_rescreened():
    record = effects.held_record(_state())
    assert record.value == RAW and record.headers == (("event-id", b"e-1"),)
    assert (record.topic, record.partition, record.offset) == ("eu.raw.payments", 0, 7)


def test_when_refusals_follow_a_release_then_the_provenance_outcome_stays_released():
    import orjson

    from pipeline.provenance import fold

    def frag(stage, decision, offset, decision_id=None):
        return {"event_id": "e-1", "stage": stage, "decision": decision, "decision_id": decision_id,
                "source": {"offset": offset}, "destination": {"topic": None, "offset": None}}

    record = None
    for fragment in (frag("screen", "held", 1), frag("approval", "refused", 2, "d-1"),
                     frag("approval", "refused", 3, "d-1"), frag("release", "released", 4, "d-2"),
                     frag("approval", "refused", 5, "d-3"), frag("screen", "held", 9)):
        record = fold(record, fragment) or record
    folded = orjson.loads(record)
    assert (folded["outcome"], folded["terminal"]) == ("released", True)
    assert len(folded["stages"]) == 6
