"""The running-time rack fence on a real two-broker KRaft cluster.

Node 1 (broker and controller, an allowed rack) starts first, with the worker on it; node 2, a
broker-only node in a disallowed rack, joins while the worker runs, then leaves again. While it is in
the cluster metadata nothing may reach any outcome topic and the alert gauge counts it; once it has
left, consumption resumes and the record produced meanwhile is screened exactly once.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.admin import apply_topics
from pipeline.broker import LocalKafka, free_ports
from pipeline.harness import read_topic
from pipeline.kafka.config import joining_broker_properties
from pipeline.policy import load_policy
from pipeline.topics import topic_specs
from tests.conftest import wait_for

pytestmark = pytest.mark.integration
ALLOWED, DISALLOWED = "fen-az1", "us-east-1a"
POLICY = """
version: 1
region: {region}
racks: [{allowed}]
datasets:
  payments:
    partitions: 1
    identity: off
"""


@pytest.fixture(scope="module")
def two_racks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalKafka, LocalKafka]]:
    """Node 1 running in the allowed rack; node 2 (same cluster, disallowed rack) built but not started."""
    port, controller, port2, unused = free_ports(4)
    # 512 MB: at 256 MB a node ran out of heap at start-up once (the log cleaner takes 128 MB)
    quiet = lambda _: None  # noqa: E731
    first = LocalKafka(tmp_path_factory.mktemp("rack-1"), port, controller, heap="512m", report=quiet,
                       properties={"broker.rack": ALLOWED})
    first.start(die_with_parent=True)
    second = LocalKafka(tmp_path_factory.mktemp("rack-2"), port2, unused, heap="512m", report=quiet,
                        properties=joining_broker_properties(2, port2, controller, rack=DISALLOWED),
                        cluster_id=first.cluster_id())
    try:
        yield first, second
    finally:
        second.stop()
        first.stop()


def _gauge(port: int) -> float | None:
    """``residency_disallowed_broker_rack`` from the worker's /metrics, None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    lines = [line for line in text.splitlines() if line.startswith("residency_disallowed_broker_rack ")]
    return float(lines[0].split()[1]) if lines else None


def _stays_false(condition: Callable[[], object], seconds: float) -> bool:
    """True when ``condition`` never held while polled for ``seconds`` (a bounded negative check)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return False
        time.sleep(0.2)
    return True


async def _produce(bootstrap: str, topic: str, event_id: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b'{"payment_id": "' + event_id.encode() + b'", "amount": 1}',
                                     key=event_id.encode(), headers=[("event-id", event_id.encode())])
    finally:
        await producer.stop()


def test_when_a_broker_in_a_disallowed_rack_joins_then_consumption_stops_until_it_leaves(
        two_racks, worker_factory, tmp_path):
    first, second = two_racks
    bootstrap = first.bootstrap
    region = f"fen{secrets.token_hex(3)}"
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(region=region, allowed=ALLOWED))
    loaded = load_policy(path)
    assert asyncio.run(apply_topics(bootstrap, topic_specs(loaded.policy))).ok  # every partition on node 1
    worker = worker_factory(loaded, bootstrap=bootstrap)
    port = int(worker.command[worker.command.index("--web-port") + 1])
    outcomes = [f"{region}.cleared.payments", f"{region}.rejected.payments", f"{region}.held",
                f"{region}.deadletter"]

    def emitted() -> dict[str, list]:
        found: dict[str, list] = {}
        for topic in outcomes:
            for m in asyncio.run(read_topic(bootstrap, topic)):
                found.setdefault(dict(m.headers or ()).get("event-id", b"").decode(), []).append(m)
        return found

    asyncio.run(_produce(bootstrap, f"{region}.raw.payments", "before"))
    wait_for(lambda: "before" in emitted(), 90, "the first record to be screened")
    assert _gauge(port) == 0.0

    second.start(die_with_parent=True)  # returns once node 2 serves metadata
    wait_for(lambda: _gauge(port) == 1.0, 30, "the alert gauge to count the disallowed broker")
    asyncio.run(_produce(bootstrap, f"{region}.raw.payments", "during"))
    assert _stays_false(lambda: "during" in emitted(), 5), "a record was screened while the fence was closed"
    assert worker.alive and _gauge(port) == 1.0, worker.log_tail()

    left_at_ms = int(time.time() * 1000)
    second.stop()
    wait_for(lambda: _gauge(port) == 0.0, 30, "the gauge to fall once the broker left")
    found = wait_for(lambda: (f := emitted()).get("during") and f, 60, "consumption to resume")
    assert [m.topic for m in found["during"]] == [f"{region}.cleared.payments"]
    assert found["during"][0].timestamp >= left_at_ms, "emitted before the disallowed broker left"
    assert len(found["before"]) == 1 and worker.alive
    log = worker.log_path.read_text(errors="replace")
    assert f"has rack '{DISALLOWED}', which is not among the policy's racks" in log
    assert "consumption resumes" in log and "payment_id" not in log
