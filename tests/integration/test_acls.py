"""`residency acls` against a real broker with ACLs on (SASL/PLAIN, StandardAuthorizer), and the rack
guard against a broker that has a rack."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError

from pipeline.aclapply import apply_acls
from pipeline.acls import policy_acls
from pipeline.admin import apply_topics
from pipeline.broker import LocalKafka, free_port, free_ports
from pipeline.kafka.config import secured_properties
from pipeline.policy import load_policy
from pipeline.topics import topic_specs
from tests.conftest import REPO, wait_for

pytestmark = pytest.mark.integration
RACK = "eu-az1"
USERS = {"svc-payments": "svc-payments-secret", "eu-residency": "worker-secret", "desk-app": "desk-secret"}
POLICY = """
version: 1
region: acl
racks: [{racks}]
kafka_principals: {{worker: "User:eu-residency", producer_groups: {{support-desk: ["User:desk-app"]}}}}
datasets:
  payments:
    partitions: 1
    producers: {{principals: [svc-payments]}}
    consumers: ["User:analytics"]
  tickets:
    partitions: 1
    producers: {{groups: [support-desk]}}   # granted to a group only: Kafka knows it as User:desk-app
"""


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    port, sasl_port, controller = free_ports(3)
    kafka = LocalKafka(tmp_path_factory.mktemp("secured"), port, controller, heap="512m", report=lambda _: None,
                       properties=secured_properties(port, sasl_port, controller, USERS, rack=RACK))
    kafka.start(die_with_parent=True)
    try:
        yield kafka.bootstrap, f"127.0.0.1:{sasl_port}"
    finally:
        kafka.stop()


def _policy(tmp_path: Path, racks: str) -> Path:
    path = tmp_path / f"policy-{racks or 'none'}.yaml"
    path.write_text(POLICY.format(racks=racks))
    return path


async def _write(sasl_bootstrap: str, user: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=sasl_bootstrap, security_protocol="SASL_PLAINTEXT",
                                sasl_mechanism="PLAIN", sasl_plain_username=user,
                                sasl_plain_password=USERS[user], request_timeout_ms=10_000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b'{"payment_id": "p1"}')
    finally:
        await producer.stop()


def _allowed(sasl: str, user: str, topic: str) -> bool:
    try:
        asyncio.run(_write(sasl, user, topic))
    except TopicAuthorizationFailedError:
        return False
    return True


def test_when_the_acls_are_applied_then_a_producer_writes_raw_and_is_refused_on_cleared(secured_broker, tmp_path):
    admin, sasl = secured_broker
    loaded = load_policy(_policy(tmp_path, RACK))
    assert asyncio.run(apply_topics(admin, topic_specs(loaded.policy))).ok
    acls = policy_acls(loaded.policy)
    assert asyncio.run(apply_acls(admin, acls)) == len(acls)

    # allowed: its raw topic (new ACLs reach the authorizer through the metadata log: wait for them)
    wait_for(lambda: _allowed(sasl, "svc-payments", "acl.raw.payments"), 30, "the ACLs to take effect")
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_write(sasl, "svc-payments", "acl.cleared.payments"))  # refused: bypassing the topology
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_write(sasl, "svc-payments", "acl.held"))
    assert _allowed(sasl, "eu-residency", "acl.cleared.payments")  # the workers may

    # a dataset granted only to a group: its members' Kafka principal writes that raw topic and no other
    assert _allowed(sasl, "desk-app", "acl.raw.tickets")
    for topic in ("acl.cleared.tickets", "acl.raw.payments", "acl.held"):
        with pytest.raises(TopicAuthorizationFailedError):
            asyncio.run(_write(sasl, "desk-app", topic))
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_write(sasl, "svc-payments", "acl.raw.tickets"))


def _worker(policy: Path, bootstrap: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "worker", "--policy", str(policy), "--bootstrap", bootstrap,
         "--web-port", str(free_port()), "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )


def test_when_a_broker_rack_is_not_allowed_then_the_worker_refuses_to_start(secured_broker, tmp_path):
    admin, _ = secured_broker
    result = _worker(_policy(tmp_path, "eu-az2, eu-az3"), admin, tmp_path)
    assert result.returncode == 2
    assert f"has rack '{RACK}', which is not among the policy's racks ['eu-az2', 'eu-az3']" in result.stderr
    assert "fix: run this fleet on brokers in the allowed racks" in result.stderr


def test_when_every_broker_rack_is_allowed_then_the_rack_guard_passes(secured_broker, tmp_path):
    admin, _ = secured_broker
    result = _worker(_policy(tmp_path, RACK), admin, tmp_path)
    assert "rack" not in result.stderr  # it got past the rack guard (and stops later: no attestation key here)
