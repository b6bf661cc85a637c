"""Approvals end to end: a real broker, real worker processes, the HTTP API and the CLI.

One scenario per worker start (starting a worker is the slow part): events are held, every abuse
case is tried through the API, the CLI and straight onto ``R.approvals``, legitimate decisions are
applied exactly once, a hold survives a worker restart, and a stale hold expires.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.parse
from collections import Counter

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.admin import apply_topics
from pipeline.harness import read_topic
from pipeline.heldcli import call
from pipeline.identity import LocalIssuer
from pipeline.topics import RegionTopics, topic_specs
from tests.conftest import REPO, wait_for
from pipeline.provenance import fragments_of

pytestmark = pytest.mark.integration

REGION = f"appr{secrets.token_hex(3)}"  # fresh topics per run, also on a reused broker
CARD = "4111111111111111"
POLICY_EDITS = {
    # payments: two distinct approvers; tickets: a one-minute TTL, so expiry runs within the test
    "      required_approvals: 1\n      ttl_seconds: 86400\n      require_justification: true":
        "      required_approvals: 2\n      ttl_seconds: 86400\n      require_justification: true",
    "      mode: any\n      required_approvals: 1\n      ttl_seconds: 86400":
        "      mode: any\n      required_approvals: 1\n      ttl_seconds: 60",
}


def payment(i: int) -> bytes:
    return json.dumps({"payment_id": f"p{i}", "amount": 50_000 + i, "currency": "EUR",
                       "subject": {"country": "DE", "email": f"u{i}@example.com"},
                       "card": {"number": CARD, "holder": "Jane Roe"}}).encode()


def ticket(i: int) -> bytes:
    return json.dumps({"ticket_id": f"t{i}", "body": "my order is late", "customer": {"country": "US"}}).encode()


async def _produce(bootstrap: str, records: list[tuple[str, str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, event_id, value in records:
            await producer.send_and_wait(topic, value, key=event_id.encode(), headers=[("event-id", event_id.encode())])
    finally:
        await producer.stop()


def _self_held(names: RegionTopics, policy_hash: str, event_id: str, producer: str) -> tuple[str, str, bytes]:
    """A held envelope as screen writes it, with a known producer principal (producer identity, issue 7)."""
    raw = payment(99)
    envelope = {
        "event_id": event_id, "dataset": "payments", "region": names.region, "policy_hash": policy_hash,
        "outcome": "held", "reason": "hold_rule:high-value", "detail": "a hold rule matched", "at": "x",
        "source": {"topic": names.raw("payments"), "partition": 0, "offset": 0, "timestamp_ms": None},
        "raw_sha256": hashlib.sha256(raw).hexdigest(), "raw_value_b64": base64.b64encode(raw).decode(),
        "raw_key_b64": None, "raw_headers": [["event-id", base64.b64encode(event_id.encode()).decode()]],
        "findings": [], "preview": {"payment_id": "p99", "card": {"number": "************1111"}},
        "held_at_ms": int(time.time() * 1000), "producer": {"subject": producer, "groups": ["payments-approvers"]},
    }
    return names.held, event_id, orjson.dumps(envelope)


class Api:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def held(self, event_id: str) -> dict:
        status, body = call("GET", f"{self.url}/held/{urllib.parse.quote(event_id, safe='')}/")
        return body if status == 200 else {}

    def decide(self, event_id: str, action: str, token: str | None, **over) -> tuple[int, dict]:
        held = self.held(event_id)
        body = {"justification": "verified with the account owner", "payload_sha256": held.get("raw_sha256"),
                "policy_hash": held.get("policy_hash"), **over}
        return call("POST", f"{self.url}/held/{urllib.parse.quote(event_id, safe='')}/{action}", token, body)


def _cli(api: Api, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "RESIDENCY_URL": api.url}
    if token:
        env["RESIDENCY_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO, env=env)


def _port(worker) -> int:  # noqa: ANN001
    return int(worker.command[worker.command.index("--web-port") + 1])


def test_when_abuse_cases_are_tried_then_each_is_refused_and_audited_and_legit_decisions_apply_once(
        kafka_bootstrap, policy_factory, worker_factory, local_idp, tmp_path):
    loaded = policy_factory(region=REGION, replace=POLICY_EDITS)
    names = RegionTopics(REGION)
    assert asyncio.run(apply_topics(kafka_bootstrap, topic_specs(loaded.policy))).ok
    worker = worker_factory(loaded, "w1", {"RESIDENCY_EXPIRY_CHECK_S": "1"})
    api = Api(_port(worker))
    wait_for(lambda: call("GET", f"{api.url}/health/ready")[0] == 200, 90, "the worker to become ready")

    pays = [f"pay-{i}" for i in range(6)]
    asyncio.run(_produce(kafka_bootstrap, [(names.raw("tickets"), "tic-0", ticket(0))]
                         + [(names.raw("payments"), e, payment(i)) for i, e in enumerate(pays)]
                         + [_self_held(names, loaded.hash, "self-0", "carol")]))
    wait_for(lambda: len(call("GET", f"{api.url}/held/")[1].get("held", [])) == 8, 60, "eight holds in the inbox")

    mint = local_idp.mint
    alice, bob = mint("alice", ["payments-approvers"]), mint("bob", ["payments-approvers", "admins"])
    stranger = LocalIssuer.create(tmp_path / "stranger-idp", issuer=local_idp.issuer, audience=local_idp.audience)
    abuse = {
        "expired token": (mint("alice", ["payments-approvers"], ttl_s=-300), 401, "unauthenticated", "expired"),
        "not-yet-valid token": (mint("alice", ["payments-approvers"], not_before=int(time.time()) + 600), 401,
                                "unauthenticated", "not_yet_valid"),
        "wrongly signed token": (stranger.mint("alice", ["payments-approvers"]), 401, "unauthenticated", "key"),
        "other issuer": (mint("alice", ["payments-approvers"], issuer="https://other.example"), 401,
                         "unauthenticated", "wrong_issuer"),
        "other audience": (mint("alice", ["payments-approvers"], audience="another-app"), 401,
                           "unauthenticated", "wrong_audience"),
        "outside the groups": (mint("mallory", ["sales", "admins"]), 403, "not_in_approver_groups", ""),
        "no token": (None, 401, "unauthenticated", ""),
    }
    for case, (token, status, code, detail) in abuse.items():
        got, body = api.decide("pay-0", "approve", token)
        assert (got, body.get("error")) == (status, code), case
        assert detail in body["message"], case
    assert api.decide("self-0", "approve", mint("carol", ["payments-approvers", "admins"]))[1]["error"] == "self_approval"
    assert api.decide("pay-0", "approve", alice, payload_sha256="0" * 64)[1]["error"] == "payload_mismatch"
    assert api.decide("pay-0", "approve", alice, policy_hash="sha256:" + "0" * 64)[1]["error"] == "policy_mismatch"
    assert api.decide("pay-0", "approve", alice, justification="")[1]["error"] == "justification_required"

    # N = 2 distinct people: alice twice counts once; replaying her decision id is refused
    status, body = api.decide("pay-0", "approve", alice, decision_id="dec-alice-1")
    assert (status, body["status"]) == (200, "approval_recorded"), body
    assert api.decide("pay-0", "approve", alice)[1]["error"] == "duplicate_approver"
    assert api.decide("pay-0", "approve", bob, decision_id="dec-alice-1")[1]["error"] == "replayed_decision"
    status, body = api.decide("pay-0", "approve", bob)
    assert (status, body["status"]) == (200, "released"), body
    assert api.decide("pay-0", "reject", bob)[1]["error"] == "already_decided"

    # straight onto R.approvals: a forged token and a replayed record are refused by the agent
    forged = {"decision_id": "forged-1", "event_id": "pay-1", "action": "approve", "token": "x.y.z",
              "justification": "j", "payload_sha256": api.held("pay-1")["raw_sha256"],
              "policy_hash": loaded.hash, "at": "now"}
    replay = {**forged, "decision_id": "dec-alice-1", "event_id": "pay-0", "token": alice}
    asyncio.run(_produce(kafka_bootstrap, [(names.approvals, "pay-1", orjson.dumps(forged)),
                                           (names.approvals, "pay-0", orjson.dumps(replay))]))
    wait_for(lambda: {r["code"] for r in api.held("pay-1")["refusals"]} >= {"unauthenticated"}, 30,
             "the forged decision to be refused")
    wait_for(lambda: "replayed_decision" in [r["code"] for r in api.held("pay-0")["refusals"]][-1:], 30,
             "the replayed decision to be refused")

    # through the CLI: refusals exit non-zero with the reason, decisions apply
    result = _cli(api, "approve", "pay-1", "--reason", "ok", token=mint("alice", ["payments-approvers"], ttl_s=-300))
    assert result.returncode == 3 and "unauthenticated" in result.stderr and "expired" in result.stderr
    result = _cli(api, "approve", "pay-1", "--reason", "ok", token=mint("mallory", ["sales"]))
    assert result.returncode == 3 and "not_in_approver_groups" in result.stderr
    result = _cli(api, "reject", "pay-1", "--reason", "card reported stolen", token=alice)
    assert result.returncode == 0 and "rejected" in result.stdout, result.stderr
    result = _cli(api, "held", "list")
    assert result.returncode == 0 and "pay-2" in result.stdout and "pay-1" not in result.stdout
    assert CARD not in result.stdout
    assert _cli(api, "approve", "pay-2", "--reason", "ok", token=alice).returncode == 0
    result = _cli(api, "approve", "pay-2", "--reason", "ok", token=bob)
    assert result.returncode == 0 and "released" in result.stdout, result.stderr

    # a restart between hold and decision loses nothing (new data dir: the table comes from its changelog)
    worker.stop()
    worker = worker_factory(loaded, "w2", {"RESIDENCY_EXPIRY_CHECK_S": "1"})
    api = Api(_port(worker))
    wait_for(lambda: api.held("pay-3").get("status") == "held", 120, "pay-3 still held after the restart")
    assert api.held("pay-0")["status"] == "released"
    assert api.decide("pay-3", "approve", alice)[1]["status"] == "approval_recorded"
    assert api.decide("pay-3", "approve", bob)[1]["status"] == "released"

    # expiry: the ticket's hold had a one-minute TTL
    wait_for(lambda: api.held("tic-0").get("status") == "expired", 90, "the ticket hold to expire")
    lead = mint("lena", ["support-leads"])
    assert api.decide("tic-0", "approve", lead)[1]["error"] == "hold_expired"

    outcomes = _outcomes(kafka_bootstrap, names)
    assert outcomes["pay-0"] == ["cleared"] and outcomes["pay-2"] == ["cleared"] and outcomes["pay-3"] == ["cleared"]
    assert outcomes["pay-1"] == ["rejected"] and outcomes["tic-0"] == ["rejected"]
    assert "pay-4" not in outcomes and "self-0" not in outcomes
    cleared = b"".join(m.value for m in asyncio.run(read_topic(kafka_bootstrap, names.cleared("payments"))))
    assert CARD.encode() not in cleared and b"************1111" in cleared
    expired = [orjson.loads(m.value) for m in asyncio.run(read_topic(kafka_bootstrap, names.rejected("tickets")))]
    assert [e["reason"] for e in expired] == ["expired"]

    refused = Counter()
    for m in asyncio.run(read_topic(kafka_bootstrap, names.provenance)):
        assert CARD.encode() not in m.value
        for fragment in fragments_of(m.value):
            assert "token" not in fragment
            if fragment["decision"] == "refused":
                refused[fragment["reason"]] += 1
    for code in ("unauthenticated", "not_in_approver_groups", "self_approval", "payload_mismatch", "policy_mismatch",
                 "justification_required", "duplicate_approver", "replayed_decision", "already_decided",
                 "hold_expired"):
        assert refused[code] >= 1, code
    assert refused["unauthenticated"] >= len(abuse) - 1
    provenance = api.held("tic-0")["provenance"]
    status, record = call("GET", f"{api.url}{provenance}")
    assert status == 200 and record["outcome"] == "expired" and record["terminal"]


def _outcomes(bootstrap: str, names: RegionTopics) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for dataset in ("payments", "tickets"):
        for outcome, topic in (("cleared", names.cleared(dataset)), ("rejected", names.rejected(dataset))):
            for m in asyncio.run(read_topic(bootstrap, topic)):
                event_id = dict(m.headers or ()).get("event-id", m.key or b"").decode()
                found.setdefault(event_id, []).append(outcome)
    return found


def test_an_event_id_with_slashes_is_held_approved_and_traced_over_http(
        kafka_bootstrap, policy_factory, worker_factory, local_idp):
    region = f"slash{secrets.token_hex(3)}"
    loaded = policy_factory(region=region)
    names = RegionTopics(region)
    assert asyncio.run(apply_topics(kafka_bootstrap, topic_specs(loaded.policy))).ok
    worker = worker_factory(loaded, "w1")
    api = Api(_port(worker))
    wait_for(lambda: call("GET", f"{api.url}/health/ready")[0] == 200, 90, "the worker to become ready")

    event_id = "acct/7/pay+1=x"  # the event-id header allows "/", "+" and "=" (pipeline.screen)
    path = urllib.parse.quote(event_id, safe="")
    asyncio.run(_produce(kafka_bootstrap, [(names.raw("payments"), event_id, payment(1))]))
    wait_for(lambda: [h["event_id"] for h in call("GET", f"{api.url}/held/")[1].get("held", [])] == [event_id],
             60, "the hold in the inbox")
    held = api.held(event_id)
    assert (held.get("event_id"), held.get("status")) == (event_id, "held"), held
    assert held["provenance"] == f"/provenance/{path}/"  # the link a client follows is encoded too

    result = _cli(api, "approve", event_id, "--reason", "checked with the customer",
                  token=local_idp.mint("alice", ["payments-approvers"]))
    assert result.returncode == 0 and "released" in result.stdout, result.stderr
    assert api.held(event_id)["status"] == "released"

    wait_for(lambda: (call("GET", f"{api.url}/provenance/{path}/")[1] or {}).get("outcome") == "released", 30,
             "the release in the provenance")
    status, record = call("GET", f"{api.url}/provenance/{path}/")
    assert (status, record["event_id"]) == (200, event_id)
    result = _cli(api, "trace", "--url", api.url, event_id)
    assert result.returncode == 0 and orjson.loads(result.stdout)["event_id"] == event_id, result.stdout
    assert call("GET", f"{api.url}/provenance/acct/7/")[0] == 404  # an unencoded slash names no event
