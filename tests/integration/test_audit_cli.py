"""The auditor's commands against a real trail: verify on the topic, export a bundle, verify it offline,
and catch a tampered bundle naming the record."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.admin import apply_topics
from pipeline.audit import load_signing_key
from pipeline.generator import generate
from pipeline.harness import produce
from pipeline.topics import topic_specs
from tests.conftest import REPO, wait_for

pytestmark = pytest.mark.integration


def residency(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120, env={"PATH": "/usr/bin:/bin", **(env or {})})


def test_when_an_auditor_verifies_and_exports_then_tampering_is_caught(
        kafka_bootstrap, policy_factory, worker_factory, audit_signing_key, tmp_path: Path):
    loaded = policy_factory(region="auditcli")
    assert asyncio.run(apply_topics(kafka_bootstrap, topic_specs(loaded.policy))).ok
    public = tmp_path / "audit-public.pem"
    public.write_text(load_signing_key(audit_signing_key).public_key_pem())
    worker = worker_factory(loaded)
    mix = list(generate(300, seed=17))
    asyncio.run(produce(kafka_bootstrap, "auditcli", mix))
    base = ["--policy", str(loaded.path), "--bootstrap", kafka_bootstrap, "--public-key", str(public)]

    def verified() -> subprocess.CompletedProcess[str] | None:
        result = residency("audit", "verify", *base)
        return result if result.returncode == 0 and f"for {len(mix)} event ids" in result.stdout else None

    result = wait_for(verified, 90, "audit verify to cover every event", interval=1)
    assert result.stdout.startswith("OK:")
    worker.stop()

    bundle = tmp_path / "bundle"
    exported = residency("audit", "export", *base, "--out", str(bundle))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    offline = residency("audit", "verify", "--bundle", str(bundle), "--public-key", str(public))
    assert offline.returncode == 0 and offline.stdout.startswith("OK:"), offline.stdout
    assert f"for {len(mix)} event ids" in offline.stdout, "the worker signs its heads on shutdown: all exported"

    lines = (bundle / "audit.jsonl").read_text().splitlines()
    victim = json.loads(lines[5])
    raw = bytearray(base64.b64decode(victim["value"]))
    raw[raw.index(b'"stage"') + 9] ^= 0x01  # flip one bit inside the stage name
    victim["value"] = base64.b64encode(bytes(raw)).decode()
    lines[5] = json.dumps(victim)
    (bundle / "audit.jsonl").write_text("\n".join(lines) + "\n")
    tampered = residency("audit", "verify", "--bundle", str(bundle), "--public-key", str(public))
    assert tampered.returncode == 1
    assert "FAILED" in tampered.stdout and f"partition={victim['partition']}, offset={victim['offset']}" in tampered.stdout, tampered.stdout


def test_when_a_checkpoint_is_written_while_the_trail_is_read_then_verify_is_not_fooled(
        kafka_bootstrap, policy_factory, audit_signing_key, monkeypatch):
    """A live fleet copies a checkpoint to R.audit.checkpoints after its R.audit entry is acknowledged.
    Reading R.audit first and the copies after, a checkpoint written in between was a copy whose
    entry lay past the end read, and verify called the trail truncated (the demo failed on it)."""
    from aiokafka import AIOKafkaProducer

    from pipeline import auditcli
    from pipeline.audit import load_public_keys, verify
    from pipeline.audit.chain import ChainWriter
    from pipeline.topics import RegionTopics

    loaded = policy_factory(region="auditrace")
    assert asyncio.run(apply_topics(kafka_bootstrap, topic_specs(loaded.policy))).ok
    names = RegionTopics("auditrace")
    signer = load_signing_key(audit_signing_key)
    writer = ChainWriter(names.audit, 0)
    at = "2026-11-30T08:00:00.000000Z"

    async def write(entries: int) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for n in range(entries):
                await producer.send_and_wait(names.audit, writer.append({"event_id": f"e{n}"}, at), partition=0)
            checkpoint = writer.checkpoint(signer, at)
            await producer.send_and_wait(names.audit, checkpoint, partition=0)
            await producer.send_and_wait(names.audit_checkpoints, checkpoint, partition=0)
        finally:
            await producer.stop()

    asyncio.run(write(3))
    real_read_topic = auditcli.read_topic

    async def read_topic_while_the_fleet_writes(bootstrap, topic, until=None):  # noqa: ANN001, ANN202
        records = await real_read_topic(bootstrap, topic, until)
        if topic == names.audit:  # the fleet chains two more entries and a checkpoint meanwhile
            await write(2)
        return records

    monkeypatch.setattr(auditcli, "read_topic", read_topic_while_the_fleet_writes)
    records, checkpoints = asyncio.run(auditcli.read_trail(kafka_bootstrap, "auditrace"))
    report = verify(records, checkpoints, load_public_keys([signer.public_key_pem()]))
    assert report.ok, report.summary()
    assert (len(records), len(checkpoints)) == (4, 1)
