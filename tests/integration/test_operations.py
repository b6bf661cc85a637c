"""What an operator relies on, against a real broker and real worker processes: the audit trail is
verified by the fleet itself (a forged record moves ``residency_audit_verify_failures_total``), and
everything a worker prints is one JSON object per line, with no payload in it."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from pipeline.admin import apply_topics
from pipeline.audit import ChainWriter
from pipeline.auditlog import read_last_record
from pipeline.generator import generate
from pipeline.harness import produce
from pipeline.topics import RegionTopics, topic_specs
from tests.conftest import REPO, wait_for

pytestmark = pytest.mark.integration
FAST_AUDIT = {"RESIDENCY_AUDIT_VERIFY_INTERVAL_S": "1", "RESIDENCY_AUDIT_CHECKPOINT_SECONDS": "1"}


def _port(worker) -> int:  # noqa: ANN001 - pipeline.runner.WorkerProcess
    return int(worker.command[worker.command.index("--web-port") + 1])


def _metrics(port: int) -> dict[str, float]:
    """Every sample of the worker's /metrics, by series (name and labels as exposed)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            samples[series] = float(value)
    return samples


def _failures(samples: dict[str, float]) -> dict[str, float]:
    found = {re.search(r'kind="([a-z_]+)"', k).group(1): v for k, v in samples.items()
             if k.startswith("residency_audit_verify_failures_total{")}
    return found


async def _end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def _forge(bootstrap: str, topic: str, partition: int) -> None:
    """What someone with write access to R.audit could do: append a well-formed entry linked to the head."""
    forger = ChainWriter.resume(topic, partition, await read_last_record(bootstrap, topic, partition))
    value = forger.append({"event_id": "forged-event", "stage": "screen", "decision": "cleared"}, datetime.now(UTC))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"forged-event", partition=partition)
    finally:
        await producer.stop()


def test_when_a_forged_record_is_appended_to_the_audit_topic_then_the_worker_counts_a_verify_failure(
        kafka_bootstrap, policy_factory, worker_factory):
    loaded = policy_factory(region="tamper")
    assert asyncio.run(apply_topics(kafka_bootstrap, topic_specs(loaded.policy))).ok
    audit = RegionTopics("tamper").audit
    partitions = loaded.policy.topology.audit_partitions
    worker = worker_factory(loaded, env=FAST_AUDIT)
    port = _port(worker)
    asyncio.run(produce(kafka_bootstrap, "tamper", list(generate(60, seed=21))))
    wait_for(lambda: _metrics(port).get("residency_audit_verified_entries_total", 0) >= 60, 90,
             "the worker to verify the audit entries of the first batch")
    clean = _failures(_metrics(port))
    assert clean and set(clean.values()) == {0.0}, f"an untouched trail must verify: {clean}"

    ends = asyncio.run(_end_offsets(kafka_bootstrap, audit, partitions))
    victim = max(ends, key=ends.get)
    asyncio.run(_forge(kafka_bootstrap, audit, victim))
    # The worker writes on from its own head, so its next entry on that partition reuses the forged seq.
    asyncio.run(produce(kafka_bootstrap, "tamper", [e for e in generate(60, seed=22)]))

    failures = wait_for(lambda: (f := _failures(_metrics(port))) and sum(f.values()) > 0 and f, 60,
                        "residency_audit_verify_failures_total to count the forged record")
    assert failures["reordered"] == 1.0, failures
    assert worker.alive, worker.log_tail()
    logged = [orjson.loads(line) for line in worker.log_path.read_text().splitlines()
              if "audit chain verification failed" in line]
    assert logged and logged[0]["partition"] == victim and logged[0]["reason"] == "reordered"
    assert logged[0]["offset"] > ends[victim], "it names a record after the forged one's position"


def test_when_a_worker_runs_and_stops_then_every_line_it_prints_is_json_without_payloads(
        kafka_bootstrap, policy_factory, worker_factory):
    loaded = policy_factory(region="jsonlog")
    assert asyncio.run(apply_topics(kafka_bootstrap, topic_specs(loaded.policy))).ok
    worker = worker_factory(loaded)
    mix = list(generate(120, seed=9))  # cleared, held, rejected and malformed (dead-lettered) events
    asyncio.run(produce(kafka_bootstrap, "jsonlog", mix))
    port = _port(worker)
    outcomes = lambda: sum(v for k, v in _metrics(port).items() if k.startswith("residency_events_total{"))  # noqa: E731
    wait_for(lambda: outcomes() >= len(mix), 90, "every event to be screened")
    assert worker.stop() == 0, worker.log_tail()

    lines = worker.log_path.read_text().splitlines()
    parsed = []
    for number, line in enumerate(lines, 1):
        try:
            parsed.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            pytest.fail(f"line {number} of the worker's output is not JSON: {line[:200]!r}")
    assert all(isinstance(doc, dict) and {"ts", "level", "logger", "msg"} <= doc.keys() for doc in parsed)
    loggers = {doc["logger"] for doc in parsed}
    assert {"pipeline.worker", "faust.worker"} <= loggers and any(name.startswith("aiokafka") for name in loggers)
    start = next(doc for doc in parsed if doc["msg"] == "worker starting")
    assert start["region"] == "jsonlog" and start["policy_hash"] == loaded.hash
    text = worker.log_path.read_text()
    leaked = sorted({secret for event in mix for secret in event.secrets if secret in text})
    assert leaked == [], "a payload value reached the worker's log"


def test_when_the_worker_refuses_to_start_then_its_output_is_json_too(kafka_bootstrap, policy_factory, tmp_path):
    loaded = policy_factory(region="jsonrefuse")  # no topics: the topic guard refuses
    command = [sys.executable, "-m", "pipeline.cli", "worker", "--policy", str(loaded.path),
               "--bootstrap", kafka_bootstrap, "--data-dir", str(tmp_path / "data")]
    base = {"PATH": "/usr/bin:/bin"}
    for env in (base, {**base, "RESIDENCY_WEB_PORT": "not-a-port"}):  # a start-up guard; invalid settings
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
        lines = (result.stdout + result.stderr).splitlines()
        assert result.returncode == 2 and lines, result.stderr
        docs = [orjson.loads(line) for line in lines]
        assert docs[-1]["level"] == "error" and docs[-1]["msg"].startswith("refusing to start"), docs[-1]
