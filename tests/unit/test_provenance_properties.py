"""Property: no raw value of a masked or detected field reaches a provenance fragment or an audit entry."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.audit import ChainWriter
from pipeline.generator import card_number, iban
from pipeline.outputs import output_for, screen_fragment
from pipeline.plan import compile_plans
from pipeline.screen import screen
from schemas.decision import RawRecord

FIELDS = ["note", "merchant.city", "channel", "items[0].sku", "subject.segment"]


def _place(doc: dict, path: str, text: str) -> None:
    node = doc
    parts = path.replace("[0]", ".0").split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    node[int(last) if last.isdigit() else last] = text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), field=st.sampled_from(FIELDS), amount=st.sampled_from([50.0, 50_000.0]),
       country=st.sampled_from(["DE", "US"]), local=st.from_regex(r"[a-z]{3,10}", fullmatch=True))
def test_no_raw_value_reaches_provenance_or_audit(policy_factory, keys, seed, field, amount, country, local):
    import random

    rng = random.Random(seed)
    card, account, mail = card_number(rng), iban(rng, "DE"), f"{local}.x@example.org"
    doc = {"payment_id": "p-1", "amount": amount, "currency": "EUR",
           "card": {"number": card_number(rng), "holder": "Anna Berg"},
           "subject": {"email": mail, "iban": account, "country": country, "segment": "retail"},
           "merchant": {"city": "Berlin"}, "note": "", "channel": "web", "items": [{"sku": "x"}]}
    _place(doc, field, f"pay {card} to {account} or {mail}")
    plan = compile_plans(policy_factory(), keys)["payments"]
    record = RawRecord("eu.raw.payments", 0, 1, mail.encode(), orjson.dumps(doc), (("event-id", b"e-1"),))
    decision = screen(record, plan)
    output = output_for(decision, record, plan)
    fragment = screen_fragment(decision, record, plan, output, 0, 1, "2026-11-29T00:00:00Z")
    entry = ChainWriter("eu.audit", 0).append(fragment, "2026-11-29T00:00:00Z")
    for blob in (orjson.dumps(fragment), entry):
        for secret in (card, account, mail, doc["card"]["number"], "Anna Berg"):
            assert secret.encode() not in blob
