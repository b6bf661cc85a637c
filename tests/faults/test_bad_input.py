"""Bad input: every case of tests/data/bad/MANIFEST.json is dead-lettered, screened or refused with a
clear reason; the worker keeps running, processes what follows, never logs a payload, and its memory
stays under RSS_BOUND_MB (measured with psutil while the corpus flows; see docs/faults.md)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.harness import collect, produce, read_topic
from tests.faults.scenarios import mixed_events, ready, rss_bytes, say, wait_until
from pipeline.provenance import fragments_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad"
RSS_BOUND_MB = 300  # absolute, worker and children; measured peak ~120 MB (docs/faults.md)
MARKERS = (b"BADINPUT", b"4111111111111111", b"\x1b[31m")


def _value(case: dict) -> bytes | None:
    if "file" in case:
        return (CORPUS / case["file"]).read_bytes()
    kind, _, n = case["generate"].partition(":")
    head = b'{"ticket_id": "BADINPUT-' + kind.encode() + b'", "customer": {"country": "DE"}, '
    if kind == "empty":
        return b""
    if kind == "null":
        return None
    if kind == "deep":
        return head + b'"body": "x", "n": ' + b"[" * int(n) + b"]" * int(n) + b"}"
    if kind == "array":
        return head + b'"body": "x", "a": [' + b",".join([b"0"] * int(n)) + b"]}"
    if kind == "bytes":
        return head + b'"body": "' + b"a" * int(n) + b'"}'
    if kind == "invalid":
        return head + b'"body": "' + b"a" * int(n)
    raise ValueError(f"unknown generator {kind!r}")


async def _send(bootstrap: str, topic: str, case: dict) -> tuple[str | None, str | None]:
    """(event id, None) once acknowledged, or (None, the error class) when the producer is refused."""
    options = case.get("produce", {})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=5000,
                                compression_type=options.get("compression"),
                                max_request_size=options.get("max_request_size", 1_048_576))
    await producer.start()
    headers = case.get("headers", [["event-id", f"bad-{case['case']}"]])
    try:
        meta = await producer.send_and_wait(topic, _value(case), key=case.get("key", "").encode() or None,
                                            headers=[(k, v.encode()) for k, v in headers])
    except Exception as exc:  # noqa: BLE001 - the error class is what the case expects
        return None, type(exc).__name__
    finally:
        await producer.stop()
    given = dict(headers).get("event-id")
    return (given if given and given.isascii() and "\n" not in given else f"{topic}:{meta.partition}:{meta.offset}"), None


class Peak(threading.Thread):
    def __init__(self, worker) -> None:  # noqa: ANN001
        super().__init__(daemon=True)
        self.worker, self.peak, self.done = worker, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            self.peak = max(self.peak, rss_bytes(self.worker))


def test_when_the_bad_input_corpus_flows_then_each_case_has_its_reason_and_the_worker_runs_on(
        fleet_factory, fault_seed):
    cases = json.loads((CORPUS / "MANIFEST.json").read_text())["cases"]
    fleet = fleet_factory("bad")
    worker = fleet.worker("w1")
    wait_until(lambda: ready(worker), 90, "the worker to be ready")
    baseline = rss_bytes(worker)
    peak = Peak(worker)
    peak.start()

    expected: dict[str, dict] = {}
    refused: dict[str, str] = {}
    for case in cases:
        dataset = case.get("dataset", "tickets")
        topic = f"{fleet.region}.{case['topic']}" if "topic" in case else fleet.names.raw(dataset)
        event_id, error = asyncio.run(_send(fleet.bootstrap, topic, case))
        if error:
            refused[case["case"]] = error
        else:
            expected[event_id] = case
    after = mixed_events(300, fault_seed)  # ordinary traffic after the corpus: the worker must get to it
    asyncio.run(produce(fleet.bootstrap, fleet.region, after))

    assert refused == {c["case"]: c["expect"]["refused"] for c in cases if "refused" in c["expect"]}
    ids = set(expected) | {e.event_id for e in after}
    found = asyncio.run(collect(fleet.bootstrap, fleet.loaded.policy, ids, timeout_s=120))
    peak.done.set()
    peak.join()
    assert worker.alive, worker.log_tail()
    assert not (ids - found.outcome.keys()), f"no outcome for {sorted(ids - found.outcome.keys())[:5]}"
    assert max(found.copies.values()) == 1
    assert all(found.of(e.event_id) == {e.expected} for e in after)

    reasons = {}
    for m in asyncio.run(read_topic(fleet.bootstrap, fleet.names.provenance)):
        for fragment in fragments_of(m.value):
            reasons[fragment["event_id"]] = (fragment["decision"], fragment["reason"])
    got = {case["case"]: reasons.get(event_id) for event_id, case in expected.items()}
    want = {case["case"]: (case["expect"]["outcome"], case["expect"]["reason"]) for case in expected.values()}
    assert got == want

    cleared = b"".join((m.key or b"") + m.value + b"".join(v for _, v in m.headers or ())
                       for d in fleet.loaded.policy.datasets
                       for m in asyncio.run(read_topic(fleet.bootstrap, fleet.names.cleared(d))))
    for case in expected.values():
        for text in case.get("never_cleared", []):
            assert text.encode() not in cleared, (case["case"], text)
    log = worker.log_path.read_bytes()
    assert not [m for m in MARKERS if m in log], "a payload string reached the worker log"
    say(f"bad input: {len(expected)} cases screened, {len(refused)} refused by the producer; "
        f"worker RSS {baseline / 2**20:.0f} MB at rest, peak {peak.peak / 2**20:.0f} MB")
    assert peak.peak < RSS_BOUND_MB * 2**20
