"""Producer identity, jurisdiction, egress profiles and attestation end to end: real broker, real worker.

One worker runs a policy with producer identity required, a service account, a jurisdiction rule and
two egress profiles; mixed producers (good, forged, expired, wrong audience, unsigned, unauthorized,
unidentified) write to it, and every record must end where the policy says, with a reason that
quotes no payload.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from pathlib import Path

import jwt
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.admin import apply_topics
from pipeline.consumer import AttestedConsumer, trusted_keys
from pipeline.harness import read_topic
from pipeline.identity import LocalIssuer
from pipeline.policy import load_policy
from pipeline.producer import identity_headers
from pipeline.audit import load_signing_key
from pipeline.topics import topic_specs
from tests.conftest import REPO, wait_for
from pipeline.provenance import fragments_of

pytestmark = pytest.mark.integration
CARD = "4111111111111111"
EMAIL = "anna.berg@example.com"
SA_SECRET = secrets.token_urlsafe(40).encode()
POLICY = """
version: 1
region: {region}
egress_regions: [us, uk]
jurisdictions: [DE, FR, NL]
keys: [{{id: pii-hmac-2026}}]
service_accounts:
  - {{key: pos-2026, subject: pos-terminals, groups: [payments-producers]}}
datasets:
  payments:
    partitions: 2
    producers: {{principals: [svc-payments], groups: [payments-producers]}}
    schema: {{required: [payment_id, amount]}}
    masking:
      - {{path: card.number, strategy: partial, params: {{keep_last: 4}}}}
      - {{path: subject.email, strategy: hash, params: {{key: pii-hmac-2026}}}}
    hold: [{{name: high-value, when: [{{field: amount, op: ">=", value: 10000}}]}}]
    approval: {{groups: [payments-approvers]}}
    residency: {{field: subject.country, allowed: [DE, FR, NL], on_violation: reject}}
    egress:
      us-analytics:
        region: us
        masking:
          - {{path: card, strategy: drop}}
          - {{path: subject.name, strategy: redact}}
      uk-support:
        region: uk
        masking:
          - {{path: merchant, strategy: replace, params: {{value: partner}}}}
          - {{path: card.number, strategy: redact, params: {{text: "[card]"}}}}
"""


def payment(pid: str, country: str | None = "DE", amount: float = 12.5) -> bytes:
    doc = {"payment_id": pid, "amount": amount, "merchant": "Acme GmbH", "card": {"number": CARD},
           "subject": {"email": EMAIL, "name": "Anna Berg", "country": country}}
    if country is None:
        del doc["subject"]["country"]
    return orjson.dumps(doc)


@pytest.fixture(scope="module")
def producer_idp(tmp_path_factory: pytest.TempPathFactory) -> LocalIssuer:
    return LocalIssuer.create(tmp_path_factory.mktemp("producer-idp"), issuer="corp-idp", audience="residency-producers")


def _cases(idp: LocalIssuer, forger: LocalIssuer, topic: str) -> list[tuple[str, bytes, list, str, str]]:
    """(event id, value, headers, expected topic kind, expected reason)."""
    good = idp.record_minter("svc-payments")
    forger.kid = idp.kid  # signed by another key under the real key id
    unsigned = jwt.encode({"sub": "svc-payments", "iss": idp.issuer, "aud": idp.audience, "exp": 4_000_000_000},
                          None, algorithm="none")

    def tok(eid: str, value: bytes, token) -> list:  # noqa: ANN001 - a minter of bound tokens, or a string as is
        return identity_headers(topic, b"k", value, eid, token=token)

    def sa(eid: str, value: bytes, secret: bytes = SA_SECRET) -> list:
        return identity_headers(topic, b"k", value, eid, account=("pos-2026", secret))

    cases = [(eid, value, tok(eid, value, token), kind, reason) for eid, value, token, kind, reason in [
        ("ok-token", payment("p1"), good, "cleared", "cleared"),
        ("ok-group", payment("p2"), idp.record_minter("svc-other", ["payments-producers"]), "cleared", "cleared"),
        ("forged", payment("p3"), forger.record_minter("svc-payments"), "rejected", "identity_invalid:bad_signature"),
        ("expired", payment("p4"), idp.record_minter("svc-payments", ttl_s=-600), "rejected", "identity_invalid:expired"),
        ("wrong-aud", payment("p5"), idp.record_minter("svc-payments", audience="someone-else"), "rejected",
         "identity_invalid:wrong_audience"),
        ("unsigned", payment("p6"), unsigned, "rejected", "identity_invalid:bad_signature"),
        ("not-allowed", payment("p8"), idp.record_minter("svc-tickets", ["support-desk"]), "rejected",
         "producer_not_authorized"),
        ("foreign", payment("p9", "US"), good, "rejected", "jurisdiction_violation"),
        ("no-country", payment("p10", None), good, "rejected", "jurisdiction_violation"),
        ("look-alike", payment("p11", "D\u0415"), good, "rejected", "jurisdiction_violation"),
        ("held", payment("p12", amount=25_000), good, "held", "hold_rule:high-value"),
        ("unbound", payment("p15"), idp.mint("svc-payments"), "rejected", "identity_invalid:unbound"),
    ]]
    cases.append(("anonymous", payment("p7"), [("event-id", b"anonymous")], "rejected", "identity_missing"))
    # replay: ok-token's valid token copied onto another record (new event id and payload), and onto
    # the same payload under a new event id
    copied = [h for h in cases[0][2] if h[0] == "residency-identity"]
    cases.append(("replayed", payment("p16", amount=99), [("event-id", b"replayed"), *copied], "rejected",
                  "identity_invalid:wrong_record"))
    cases.append(("replayed-id", payment("p1"), [("event-id", b"replayed-id"), *copied], "rejected",
                  "identity_invalid:wrong_record"))
    value = payment("p13")
    cases.append(("sa-ok", value, sa("sa-ok", value), "cleared", "cleared"))
    cases.append(("sa-tampered", payment("p14"), sa("sa-tampered", value), "rejected", "identity_invalid:bad_signature"))
    cases.append(("sa-wrong-key", value, sa("sa-wrong-key", value, b"x" * 40), "rejected", "identity_invalid:bad_signature"))
    return cases


async def _produce(bootstrap: str, topic: str, cases: list) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for eid, value, headers, _, _ in cases:
            await producer.send_and_wait(topic, value, key=b"k", headers=headers)
    finally:
        await producer.stop()


def _by_event(messages: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for m in messages:
        eid = dict(m.headers or ()).get("event-id", m.key or b"").decode()
        out.setdefault(eid, []).append(m)
    return out


def test_when_mixed_producers_write_then_each_record_is_routed_as_the_policy_says(
        kafka_bootstrap, worker_factory, producer_idp, attestation_key, tmp_path):
    region = f"enf{secrets.token_hex(3)}"
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(POLICY.format(region=region))
    loaded = load_policy(policy_path)
    assert asyncio.run(apply_topics(kafka_bootstrap, topic_specs(loaded.policy))).ok
    worker = worker_factory(loaded, env={
        "RESIDENCY_PRODUCER_JWKS": str(producer_idp.jwks_path), "RESIDENCY_PRODUCER_JWT_ISSUER": producer_idp.issuer,
        "RESIDENCY_PRODUCER_JWT_AUDIENCE": producer_idp.audience,
        "RESIDENCY_PRODUCER_KEYS": json.dumps({"pos-2026": SA_SECRET.decode()})})
    cases = _cases(producer_idp, LocalIssuer.create(tmp_path / "forger", issuer="corp-idp",
                                                    audience="residency-producers"), f"{region}.raw.payments")
    asyncio.run(_produce(kafka_bootstrap, f"{region}.raw.payments", cases))

    topics = {"cleared": f"{region}.cleared.payments", "rejected": f"{region}.rejected.payments",
              "held": f"{region}.held", "us": f"{region}.egress.us-analytics.payments",
              "uk": f"{region}.egress.uk-support.payments", "dead": f"{region}.deadletter"}
    ids = {c[0] for c in cases}

    def routed() -> dict | None:
        seen = {kind: _by_event(asyncio.run(read_topic(kafka_bootstrap, t))) for kind, t in topics.items()}
        done = set().union(*(seen[k].keys() for k in ("cleared", "rejected", "held", "dead")))
        return seen if ids <= done and len(seen["us"]) == len(seen["uk"]) == 3 else None

    seen = wait_for(routed, 150, "every record's outcome and egress copies")
    assert worker.alive, worker.log_tail()
    for eid, _, _, kind, reason in cases:
        where = {k for k in ("cleared", "rejected", "held", "dead") if eid in seen[k]}
        assert where == {kind}, (eid, where)
        assert all(len(v) == 1 for k in topics for e, v in seen[k].items()), "an event id twice on one topic"
        if kind in ("rejected", "held"):
            envelope = orjson.loads(seen[kind][eid][0].value)
            assert envelope["reason"] == reason, (eid, envelope["reason"], envelope["detail"])
            assert CARD not in envelope["detail"] and EMAIL not in envelope["detail"]
            assert all(v is None for k, v in envelope["raw_headers"] if k == "residency-identity")

    held = orjson.loads(seen["held"]["held"][0].value)
    assert held["producer"] == {"subject": "svc-payments", "groups": []}

    # each profile's masking, on top of the dataset's
    cleared = orjson.loads(seen["cleared"]["ok-token"][0].value)
    us = orjson.loads(seen["us"]["ok-token"][0].value)
    uk = orjson.loads(seen["uk"]["ok-token"][0].value)
    assert cleared["card"]["number"].endswith("1111") and CARD not in str(cleared)
    assert cleared["subject"]["email"].startswith("hmac:") and cleared["merchant"] == "Acme GmbH"
    assert "card" not in us and us["subject"]["name"] == "[REDACTED]" and us["merchant"] == "Acme GmbH"
    assert uk["merchant"] == "partner" and uk["card"]["number"] == "[card]" and uk["subject"]["name"] == "Anna Berg"
    assert set(seen["us"]) == set(seen["uk"]) == {"ok-token", "ok-group", "sa-ok"}
    headers = dict(seen["us"]["ok-token"][0].headers)
    assert headers["residency-egress-region"] == b"us" and "residency-identity" not in headers

    # provenance: the producer and every destination
    def fragments() -> dict | None:
        found = {f["event_id"]: f for m in asyncio.run(read_topic(kafka_bootstrap, f"{region}.provenance"))
                 for f in fragments_of(m.value)}
        return found if ids <= found.keys() else None

    prov = wait_for(fragments, 60, "a provenance fragment per event")
    assert prov["sa-ok"]["producer"] == {"subject": "pos-terminals", "groups": ["payments-producers"]}
    assert {d["topic"] for d in prov["ok-token"]["destinations"]} == {topics["cleared"], topics["us"], topics["uk"]}
    assert prov["forged"]["producer"] is None and len(prov["forged"]["destinations"]) == 1

    # bypass: a record written straight to the cleared topic is caught
    asyncio.run(_produce(kafka_bootstrap, topics["cleared"],
                         [("bypass", payment("p99"), [("event-id", b"bypass")], "", "")]))
    pem = load_signing_key(attestation_key).public_key_pem()
    (tmp_path / "attest.pem").write_text(pem)
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "verify-topic", topics["cleared"],
                             "--bootstrap", kafka_bootstrap, "--public-key", str(tmp_path / "attest.pem")],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 1
    flagged = [line for line in result.stdout.splitlines() if line.startswith(("UNSIGNED", "BAD_SIGNATURE"))]
    assert len(flagged) == 1 and flagged[0].startswith("UNSIGNED ")
    assert "4 records, 3 attested, 1 not (unsigned 1)" in result.stdout
    us_check = subprocess.run([sys.executable, "-m", "pipeline.cli", "verify-topic", topics["us"],
                               "--bootstrap", kafka_bootstrap, "--public-key", str(tmp_path / "attest.pem")],
                              capture_output=True, text=True, timeout=60, cwd=REPO)
    assert us_check.returncode == 0, us_check.stdout

    async def consume() -> tuple[list[str], dict]:
        async with AttestedConsumer(topics["cleared"], trusted=trusted_keys([pem]), bootstrap_servers=kafka_bootstrap,
                                    auto_offset_reset="earliest", group_id=f"{region}.consumer.test") as consumer:
            got: list[str] = []
            while sum(consumer.counts.values()) < 4:
                got += [dict(r.message.headers)["event-id"].decode() for r in await consumer.getmany(1000)]
            return got, dict(consumer.counts)

    got, counts = asyncio.run(consume())
    assert sorted(got) == ["ok-group", "ok-token", "sa-ok"] and counts == {"ok": 3, "unsigned": 1}
