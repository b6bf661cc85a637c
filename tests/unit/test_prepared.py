"""``prepare`` + ``outputs_of`` + ``fragment_json`` (what a helper sends, what the worker splices) give
exactly ``outputs_for`` + ``screen_fragment``: the same records, seals and provenance fragment."""

from __future__ import annotations

import copy
import hashlib
import pickle

import orjson
import pytest

from pipeline.attestation import Attestor
from pipeline.audit import generate_signing_key, load_signing_key
from pipeline.benchmark.events import bench_events
from pipeline.outputs import fragment_json, outputs_for, outputs_of, prepare, screen_fragment
from pipeline.plan import compile_plans
from pipeline.policy import load_policy, parse_policy
from pipeline.screen import screen
from schemas.decision import RawRecord
from tests.conftest import EXAMPLE_POLICY

EGRESS_POLICY = b"""
region: eu
egress_regions: [us]
jurisdictions: [DE, FR]
datasets:
  payments:
    partitions: 1
    identity: off
    residency: {field: country, allowed: [DE, FR]}
    masking: [{path: card, strategy: partial}]
    egress:
      us-analytics:
        region: us
        masking: [{path: name, strategy: redact}, {path: card, strategy: drop}]
"""


def _timeless(value: bytes) -> object:
    """A held, rejected or dead-letter envelope without the clock readings each build takes."""
    if not value.startswith(b'{"event_id"'):
        return value  # a cleared or egress record: the masked document itself
    envelope = orjson.loads(value)
    return {k: v for k, v in envelope.items() if k not in ("at", "held_at_ms")}


def _hashless(fragment: dict, outputs: list) -> dict:
    """``fragment`` with its hashes of the outputs checked against ``outputs`` and taken out (an
    envelope's hash covers its clock readings, which differ between two builds)."""
    hashes = [hashlib.sha256(o.value).hexdigest() for o in outputs]
    assert fragment["emitted_sha256"] == hashes[0]
    assert [d["sha256"] for d in fragment["destinations"]] == hashes
    return {**fragment, "emitted_sha256": None,
            "destinations": [{**d, "sha256": None} for d in fragment["destinations"]]}


def _same(decision_of, record: RawRecord, plan, producer=None) -> None:  # noqa: ANN001
    """Screen once and compare both ways on two copies of the decision (``prepare`` and
    ``outputs_for`` may change it; a second screening could differ: the detection budget is time)."""
    reference = decision_of()
    prepared_from = copy.deepcopy(reference)
    reference.producer = prepared_from.producer = producer
    expected = outputs_for(reference, record, plan)
    prepared = pickle.loads(pickle.dumps(prepare(prepared_from, record, plan)))  # as it crosses the socket
    got = outputs_of(prepared, plan)
    assert [(o.topic, o.key, _timeless(o.value), o.headers) for o in got] == \
        [(o.topic, o.key, _timeless(o.value), o.headers) for o in expected]
    assert [o.seal for o in got] == [o.seal for o in expected]
    places = [(i, 1000 + i) for i in range(len(expected))]
    want = screen_fragment(reference, record, plan, expected[0], *places[0], "2026-11-30T00:00:00.000Z",
                           [(o, p, off) for o, (p, off) in zip(expected[1:], places[1:], strict=True)],
                           "2026-11-30T00:00:01.000Z")
    fragment = fragment_json(prepared, places, b'"2026-11-30T00:00:00.000Z"', b'"2026-11-30T00:00:01.000Z"')
    assert _hashless(orjson.loads(fragment), got) == _hashless(want, expected)
    assert (prepared.event_id, prepared.outcome, prepared.reason) == \
        (reference.event_id, reference.outcome.value, reference.reason)
    assert prepared.finding_types == tuple(f.type for f in reference.findings)
    assert prepared.mask_strategies == tuple(m.strategy for m in reference.masked)


@pytest.mark.parametrize("attesting", [False, True])
def test_prepared_bench_events_equal_the_reference(keys, attesting: bool) -> None:
    attestor = Attestor(load_signing_key(generate_signing_key())) if attesting else None
    plans = compile_plans(load_policy(EXAMPLE_POLICY), keys, None, attestor)
    events = list(bench_events(300, 11))
    outcomes = set()
    for i, e in enumerate(events):
        record = RawRecord(f"eu.raw.{e.dataset}", i % 3, i, e.key, e.value, tuple(e.headers), 1_700_000_000_000 + i)
        plan = plans[e.dataset]
        _same(lambda record=record, plan=plan: screen(record, plan), record, plan,
              {"subject": "svc", "groups": ["g"]} if i % 2 else None)
        outcomes.add(screen(record, plan).outcome)
    assert len(outcomes) == 4  # cleared, held, rejected and dead-letter all compared


def test_an_egress_profile_and_an_unknown_coordinate_are_spliced_like_the_reference(keys) -> None:
    plan = compile_plans(parse_policy(EGRESS_POLICY, "p.yaml"), keys)["payments"]
    record = RawRecord("eu.raw.payments", 0, 7, b"k",
                       orjson.dumps({"card": "4111111111111111", "name": "Anna Berg", "country": "DE"}),
                       (("event-id", b"e1"),))
    _same(lambda: screen(record, plan), record, plan)
    decision = screen(record, plan)
    prepared = prepare(decision, record, plan)
    assert len(prepared.outputs) == 2
    fragment = orjson.loads(fragment_json(prepared, [(None, None), (0, 5)], b'"r"', b'"a"'))
    assert fragment["destination"] == {"topic": "eu.cleared.payments", "partition": None, "offset": None}
    assert fragment["destinations"][1]["profile"] == "us-analytics"


def test_now_is_utc_to_the_millisecond_as_the_audit_trail_reads_it():
    from datetime import UTC, datetime

    from pipeline.audit.entry import parse_at, valid_at
    from pipeline.outputs import now_iso

    for _ in range(2000):  # across second boundaries too: the formatted second is cached
        now = datetime.now(UTC)
        before = now.replace(microsecond=now.microsecond // 1000 * 1000)  # the text is truncated to the ms
        text = now_iso()
        after = datetime.now(UTC)
        assert valid_at(text) and len(text) == 24 and text.endswith("Z"), text
        assert before <= parse_at(text) <= after, text
