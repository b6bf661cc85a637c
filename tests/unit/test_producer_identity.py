"""Producer identity, jurisdiction and egress profiles in the pure screening core (no broker)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import jwt
import orjson
import pytest

from pipeline.identity import LocalIssuer, Principal
from pipeline.outputs import outputs_for, screen_fragment
from pipeline.plan import compile_plans
from pipeline.policy import PolicyError, parse_policy
from pipeline.producer import identity_headers
from pipeline.producer_identity import KeySnapshot, ProducerCheck, read_jwks, record_digest, sign_record
from pipeline.identity import JwtVerifier
from pipeline.screen import screen
from schemas.decision import Outcome, RawRecord

SECRET = b"s" * 40
POLICY = b"""
region: eu
egress_regions: [us]
jurisdictions: [DE, FR]
service_accounts: [{key: pos-2026, subject: pos-terminals, groups: [payments-producers]}]
datasets:
  payments:
    partitions: 1
    producers: {principals: [svc-payments], groups: [payments-producers]}
    residency: {field: country, allowed: [DE, FR]}
    masking: [{path: card, strategy: partial}]
    egress:
      us-analytics:
        region: us
        masking: [{path: name, strategy: redact}, {path: card, strategy: drop}]
"""


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> LocalIssuer:
    return LocalIssuer.create(tmp_path_factory.mktemp("idp"), issuer="corp", audience="residency-producers")


@pytest.fixture
def plan(idp, keys):
    snapshot = KeySnapshot(read_jwks(str(idp.jwks_path)))
    check = ProducerCheck(verifier=JwtVerifier("mem", idp.issuer, idp.audience, keys=snapshot),
                          accounts={"pos-2026": (SECRET, Principal("pos-terminals", ("payments-producers",),
                                                                   "service-account", None, 0))})
    return compile_plans(parse_policy(POLICY, "p.yaml"), keys, check)["payments"]


def rec(value: dict, headers: list) -> RawRecord:
    return RawRecord("eu.raw.payments", 0, 7, b"k", orjson.dumps(value), tuple(headers))


DOC = {"card": "4111111111111111", "name": "Anna Berg", "country": "DE"}


def bound(doc: dict, token, eid: str = "e1", topic: str = "eu.raw.payments") -> RawRecord:  # noqa: ANN001
    """A record with its identity headers; ``token`` is a minter of bound tokens or a string sent as it is."""
    value = orjson.dumps(doc)
    return RawRecord(topic, 0, 7, b"k", value, tuple(identity_headers(topic, b"k", value, eid, token=token)))


@pytest.mark.parametrize(("mint", "reason"), [
    (lambda i: i.mint("svc-payments", ttl_s=-600), "identity_invalid:expired"),
    (lambda i: i.mint("svc-payments", audience="other"), "identity_invalid:wrong_audience"),
    (lambda i: i.mint("svc-payments", issuer="evil"), "identity_invalid:wrong_issuer"),
    (lambda i: jwt.encode({"sub": "svc-payments", "iss": i.issuer, "aud": i.audience, "exp": 4_000_000_000}, None,
                          algorithm="none"), "identity_invalid:bad_signature"),
    (lambda i: "not.a.token", "identity_invalid:malformed"),
    (lambda i: i.record_minter("svc-tickets"), "producer_not_authorized"),
])
def test_when_the_token_is_bad_or_unauthorized_then_the_record_is_rejected_with_a_code(plan, idp, mint, reason):
    decision = screen(bound(DOC, mint(idp)), plan)
    assert (decision.outcome, decision.reason) == (Outcome.REJECTED, reason)
    assert "4111" not in decision.detail and "Anna" not in decision.detail


def test_when_a_token_is_forged_with_the_real_key_id_then_its_signature_fails(plan, idp, tmp_path):
    forger = LocalIssuer.create(tmp_path, issuer=idp.issuer, audience=idp.audience)
    forger.kid = idp.kid
    assert screen(bound(DOC, forger.record_minter("svc-payments")), plan).reason == "identity_invalid:bad_signature"


def test_when_no_identity_is_sent_then_the_record_is_rejected_as_missing(plan):
    assert screen(rec(DOC, [("event-id", b"e1")]), plan).reason == "identity_missing"


def test_when_a_valid_token_writes_then_the_record_clears_with_its_producer_and_every_profile(plan, idp):
    decision = screen(bound(DOC, idp.record_minter("svc-payments", ["x"])), plan)
    assert decision.outcome is Outcome.CLEARED and decision.producer == {"subject": "svc-payments", "groups": ["x"]}
    outputs = outputs_for(decision, rec(DOC, []), plan)
    assert [o.topic for o in outputs] == ["eu.cleared.payments", "eu.egress.us-analytics.payments"]
    cleared, us = (orjson.loads(o.value) for o in outputs)
    assert cleared["card"].endswith("1111") and cleared["name"] == "Anna Berg"
    assert "card" not in us and us["name"] == "[REDACTED]" and us["country"] == "DE"
    fragment = screen_fragment(decision, rec(DOC, []), plan, outputs[0], 0, 1, "now", [(outputs[1], 0, 5)])
    assert fragment["producer"]["subject"] == "svc-payments"
    assert [d["topic"] for d in fragment["destinations"]] == [o.topic for o in outputs]
    assert fragment["destinations"][1]["profile"] == "us-analytics"


def test_when_a_service_account_signs_then_it_clears_and_a_changed_value_does_not(plan):
    value = orjson.dumps(DOC)
    headers = [("event-id", b"e2"), ("residency-key-id", b"pos-2026"),
               ("residency-signature", sign_record(SECRET, "eu.raw.payments", b"k", value, "e2").encode())]
    ok = screen(RawRecord("eu.raw.payments", 0, 8, b"k", value, tuple(headers)), plan)
    assert ok.outcome is Outcome.CLEARED and ok.producer["subject"] == "pos-terminals"
    tampered = RawRecord("eu.raw.payments", 0, 8, b"k", value.replace(b"DE", b"FR"), tuple(headers))
    assert screen(tampered, plan).reason == "identity_invalid:bad_signature"
    other_key = [h if h[0] != "residency-key-id" else ("residency-key-id", b"nope") for h in headers]
    assert screen(RawRecord("eu.raw.payments", 0, 8, b"k", value, tuple(other_key)), plan).reason == \
        "identity_invalid:unknown_key"
    elsewhere = RawRecord("eu.raw.tickets", 0, 8, b"k", value, tuple(headers))  # copied into another raw topic
    assert screen(elsewhere, plan).reason == "identity_invalid:bad_signature"


OTHER_CARD = "5555555555554444"


def test_when_a_bound_token_is_copied_onto_another_record_then_it_is_rejected_and_quotes_nothing(plan, idp):
    original = bound(DOC, idp.record_minter("svc-payments"))
    assert screen(original, plan).outcome is Outcome.CLEARED
    token = [h for h in original.headers if h[0] == "residency-identity"]
    other_value = orjson.dumps(DOC | {"card": OTHER_CARD})
    copies = {
        "other value, same event id": RawRecord(original.topic, 0, 8, b"k", other_value, (("event-id", b"e1"), *token)),
        "same value, other event id": RawRecord(original.topic, 0, 8, b"k", original.value, (("event-id", b"e2"), *token)),
        "other key": RawRecord(original.topic, 0, 8, b"k2", original.value, (("event-id", b"e1"), *token)),
        "other topic": RawRecord("eu.raw.tickets", 0, 8, b"k", original.value, (("event-id", b"e1"), *token)),
        "no event id header": RawRecord(original.topic, 0, 8, b"k", original.value, tuple(token)),
    }
    for name, copy in copies.items():
        decision = screen(copy, plan)
        assert (decision.outcome, decision.reason) == (Outcome.REJECTED, "identity_invalid:wrong_record"), name
        assert not any(secret in decision.detail for secret in ("4111", OTHER_CARD, "Anna", token[0][1].decode()))


@pytest.mark.parametrize("claim", [None, 12345, ["a"]])
def test_when_a_valid_token_is_not_bound_to_a_record_then_it_is_refused(plan, idp, claim):
    extra = {} if claim is None else {"record_sha256": claim}
    decision = screen(bound(DOC, idp.mint("svc-payments", extra=extra)), plan)
    assert (decision.outcome, decision.reason) == (Outcome.REJECTED, "identity_invalid:unbound")


@pytest.mark.parametrize("country", [None, "US", "D\u0415", "\uff24\uff25", 49, ""])
def test_when_the_jurisdiction_is_missing_foreign_or_a_look_alike_then_it_is_a_violation(plan, idp, country):
    doc = {k: v for k, v in DOC.items() if k != "country"} | ({} if country is None else {"country": country})
    decision = screen(bound(doc, idp.record_minter("svc-payments")), plan)
    assert (decision.outcome, decision.reason) == (Outcome.REJECTED, "jurisdiction_violation")


def test_when_a_release_is_screened_then_identity_is_not_checked_again(plan):
    assert screen(rec(DOC, []), plan, release=True).outcome is Outcome.CLEARED


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda t: t.replace(b"region: us\n", b"region: cn\n"),
     "p.yaml: datasets.payments.egress.us-analytics.region: egress profile 'us-analytics' sends to region 'cn'"),
    (lambda t: t.replace(b"allowed: [DE, FR]", b"allowed: [DE, US]"),
     "p.yaml: datasets.payments.residency.allowed: names ['US'], which this fleet may not clear"),
    (lambda t: t.replace(b"    producers: {principals: [svc-payments], groups: [payments-producers]}\n", b""),
     "p.yaml: datasets.payments: this dataset requires producer identity, so it needs a 'producers' section"),
    (lambda t: t.replace(b"principals: [svc-payments], groups: [payments-producers]", b"principals: []"),
     "p.yaml: datasets.payments.producers: list at least one of 'principals' or 'groups'"),
])
def test_when_enforcement_fields_are_wrong_then_the_policy_error_names_the_path(edit, expected):
    with pytest.raises(PolicyError) as caught:
        parse_policy(edit(POLICY), "p.yaml")
    assert expected in str(caught.value)


def test_when_identity_is_off_in_yaml_then_it_is_off_and_listed_for_the_warning():
    loaded = parse_policy(POLICY.replace(b"    partitions: 1\n", b"    partitions: 1\n    identity: off\n"))
    assert loaded.policy.identity_off() == ["payments"]


def test_the_shell_lines_in_docs_producers_md_compute_the_same_binding_and_signature():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "producers.md").read_text()
    block = doc.split("## kcat", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if line.startswith(("sha()", "binding()", "RECORD_SHA256=", "SIG="))]
    assert len(lines) == 4
    script = "\n".join([*lines, 'printf "%s %s" "$RECORD_SHA256" "$SIG"'])
    env = {"PATH": os.environ["PATH"], "EVENT_ID": "e-7", "KEY": "p1", "VALUE": '{"payment_id": "p1"}',
           "SECRET": SECRET.decode()}
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30, check=True)
    value = env["VALUE"].encode()
    assert result.stdout.split() == [record_digest("eu.raw.payments", b"p1", value, "e-7"),
                                     sign_record(SECRET, "eu.raw.payments", b"p1", value, "e-7")]
