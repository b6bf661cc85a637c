"""The screening topology end to end: a real broker over TCP, a real worker process, real RocksDB."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline.admin import apply_topics, check_topics, partition_counts
from pipeline.broker import free_port
from pipeline.generator import generate
from pipeline.harness import collect, leaked, produce, read_topic
from pipeline.audit import load_public_keys, load_signing_key, verify
from pipeline.auditcli import read_trail
from pipeline.topics import RegionTopics, topic_specs
from tests.conftest import REPO, wait_for
from pipeline.provenance import fragments_of

pytestmark = pytest.mark.integration


def _all_of(messages, ids):
    return messages if {f["event_id"] for m in messages for f in fragments_of(m.value)} >= ids else None


def _verified(bootstrap, keys, events):
    records, checkpoints = asyncio.run(read_trail(bootstrap, "flow"))
    report = verify(records, checkpoints, keys)
    return report if report.counts.event_ids >= events and report.counts.checkpoints > 0 else None


def test_when_topics_are_applied_then_every_topic_exists_with_the_policy_partitions(
        kafka_bootstrap, policy_factory):
    loaded = policy_factory(region="prov")
    specs = topic_specs(loaded.policy)
    first = asyncio.run(apply_topics(kafka_bootstrap, specs))
    again = asyncio.run(apply_topics(kafka_bootstrap, specs))

    assert first.ok and sorted(first.created) == sorted(s.name for s in specs)
    assert again.ok and again.created == [] and len(again.present) == len(specs)
    names = RegionTopics("prov")
    expected = {names.raw("payments"), names.cleared("payments"), names.rejected("payments"),
                names.held, names.approvals, names.deadletter, names.audit, names.provenance}
    assert expected <= {s.name for s in specs}


def test_when_a_topic_has_the_wrong_partition_count_then_apply_reports_drift(kafka_bootstrap, policy_factory):
    loaded = policy_factory(region="drift")
    wrong = RegionTopics("drift").raw("payments")

    async def create_wrong() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(wrong, 1, 1)])
            for _ in range(100):  # a new topic takes a moment to show in metadata
                if (await partition_counts(admin, [wrong])).get(wrong) == 1:
                    return
                await asyncio.sleep(0.1)
            pytest.fail("the wrongly partitioned topic never showed in metadata")
        finally:
            await admin.close()

    asyncio.run(create_wrong())
    report = asyncio.run(apply_topics(kafka_bootstrap, topic_specs(loaded.policy)))

    assert not report.ok
    assert report.problems == [f"topic {wrong} has 1 partitions, the policy says 3"]


def test_when_topics_are_missing_then_the_worker_refuses_to_start_and_names_the_fix(
        kafka_bootstrap, policy_factory, tmp_path):
    loaded = policy_factory(region="missing")
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "worker", "--policy", str(loaded.path),
         "--bootstrap", kafka_bootstrap, "--web-port", str(free_port()), "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert result.returncode == 2
    assert "topic missing.raw.payments is missing" in result.stderr
    assert f"residency topics apply --policy {loaded.path}" in result.stderr


def test_when_a_mixed_batch_flows_then_each_event_ends_in_its_one_expected_outcome_and_nothing_leaks(
        kafka_bootstrap, policy_factory, worker_factory, audit_signing_key):
    loaded = policy_factory(region="flow")
    assert asyncio.run(apply_topics(kafka_bootstrap, topic_specs(loaded.policy))).ok
    assert asyncio.run(check_topics(kafka_bootstrap, topic_specs(loaded.policy))) == []
    mix = list(generate(600, seed=11))
    worker = worker_factory(loaded)
    try:
        asyncio.run(produce(kafka_bootstrap, "flow", mix, compression="lz4"))  # the worker's own output: zstd
        outcomes = asyncio.run(collect(kafka_bootstrap, loaded.policy, {e.event_id for e in mix}, 150))
        assert worker.alive, worker.log_tail()
        ids = {e.event_id for e in mix}
        provenance = wait_for(lambda: _all_of(asyncio.run(read_topic(kafka_bootstrap, RegionTopics("flow").provenance)), ids),
                              60, "a provenance fragment for every event")
        changelog = RegionTopics("flow").changelog("provenance")
        wait_for(lambda: {m.key.decode() for m in asyncio.run(read_topic(kafka_bootstrap, changelog))}
                 >= {e.event_id for e in mix}, 60, "every event id in the provenance table's changelog")
        keys = load_public_keys([load_signing_key(audit_signing_key).public_key_pem()])
        report = wait_for(lambda: _verified(kafka_bootstrap, keys, len(mix)), 60, "the audit trail to cover every event")
    finally:
        worker.stop()
    assert report.ok, report.summary()

    wrong = {e.event_id: (e.expected, outcomes.of(e.event_id)) for e in mix
             if outcomes.of(e.event_id) != {e.expected}}
    assert wrong == {}
    assert max(outcomes.copies.values()) == 1, "an event id appeared twice on an outcome topic"
    assert Counter(e.expected for e in mix).keys() == {"cleared", "held", "rejected", "deadletter"}
    assert leaked(outcomes, mix) == []

    fragments = [f for m in provenance for f in fragments_of(m.value)]
    assert {f["event_id"] for f in fragments} == {e.event_id for e in mix}
    for fragment in fragments:
        assert fragment["decision"] == next(e.expected for e in mix if e.event_id == fragment["event_id"])
        assert fragment["destination"]["offset"] is not None
    raw_blob = b"".join(m.value for m in provenance)
    for event in mix:
        for secret in event.secrets:
            assert secret.encode() not in raw_blob


def _get(port: int, path: str) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())
    except OSError:
        return 0, {}


def test_when_a_worker_runs_then_it_serves_health_metrics_and_provenance(
        kafka_bootstrap, policy_factory, worker_factory):
    import urllib.request

    loaded = policy_factory(region="web")
    assert asyncio.run(apply_topics(kafka_bootstrap, topic_specs(loaded.policy))).ok
    worker = worker_factory(loaded)
    port = int(worker.command[worker.command.index("--web-port") + 1])
    wait_for(lambda: _get(port, "/health/ready")[0] == 200, 90, "the worker to become ready")
    assert _get(port, "/health/live") == (200, {"status": "alive"})

    mix = list(generate(60, seed=5))
    asyncio.run(produce(kafka_bootstrap, "web", mix))
    for event in mix[:5]:
        status, record = wait_for(lambda e=event: (r := _get(port, f"/provenance/{e.event_id}/"))[0] == 200 and r,
                                  60, f"provenance of {event.event_id}")
        assert record["event_id"] == event.event_id and record["outcome"] == event.expected
    assert _get(port, "/provenance/no-such-event/")[0] == 404
    traced = subprocess.run([sys.executable, "-m", "pipeline.cli", "trace", mix[0].event_id, "--url",
                             f"http://127.0.0.1:{port}"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert traced.returncode == 0 and orjson.loads(traced.stdout)["event_id"] == mix[0].event_id

    def metrics() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read().decode()

    cleared = sum(1 for e in mix if e.expected == "cleared" and e.dataset == "payments")
    line = f'residency_events_total{{dataset="payments",outcome="cleared"}} {float(cleared)}'
    text = wait_for(lambda: t if line in (t := metrics()) else None, 60, "the cleared counter to count every event")
    assert "faust_messages_received" in text and "residency_ready 1.0" in text
    assert "residency_screen_latency_seconds_count" in text and "residency_ingress_to_cleared_seconds_count" in text

    def lag_drained() -> bool:
        lags = [line for line in metrics().splitlines() if line.startswith("residency_consumer_lag{")]
        return bool(lags) and all(line.endswith(" 0.0") for line in lags)

    wait_for(lag_drained, 60, "consumer lag to return to zero")
    assert worker.alive
