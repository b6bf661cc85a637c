"""A real Apache Kafka on loopback, started and stopped by the project; no JVM may outlive a test."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from pipeline.broker import LocalKafka, cmd_start, cmd_status, cmd_stop, free_ports
from pipeline.kafka.probe import port_in_use
from pipeline.kafka.process import is_gone
from tests.kafka_topics import create_topics

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]

# Started in a child interpreter that the test then kills with SIGKILL.
PARENT_SCRIPT = """
import sys
from pathlib import Path
from pipeline.broker import LocalKafka

kafka = LocalKafka(Path(sys.argv[1]), port=int(sys.argv[2]), controller_port=int(sys.argv[3]))
kafka.start(die_with_parent=True)
print(kafka.status().pid, flush=True)
sys.stdin.read()  # hold the broker until the test kills this process
"""


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def read_line(child: subprocess.Popen[str], timeout: float) -> str:
    """One line of the child's stdout, failing the test if none arrives before ``timeout``."""
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    if not ready:
        pytest.fail(f"no output from the child within {timeout}s")
    return child.stdout.readline().strip()


def consecutive_free_ports() -> int:
    """A port whose successor is free too, as the CLI's default controller port needs."""
    for port in free_ports(20):
        if not port_in_use(port + 1):
            return port
    pytest.fail("no pair of consecutive free ports")


@pytest.fixture
def kafka_factory(tmp_path: Path):
    """Brokers in a private home on free ports, sharing the user's jar cache; all stopped after."""
    made: list[LocalKafka] = []

    def make(**overrides) -> LocalKafka:
        port, controller_port = free_ports(2)
        options = {"home": tmp_path / "kafka", "port": port, "controller_port": controller_port}
        kafka = LocalKafka(**{**options, **overrides})
        made.append(kafka)
        return kafka

    yield make
    for kafka in made:
        kafka.stop(timeout=10)


async def round_trip(bootstrap: str, topic: str, value: bytes) -> bytes:
    """Create ``topic``, produce one record to it and consume it back."""
    await create_topics(bootstrap, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"event-1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    return record.value


async def test_when_a_broker_starts_then_a_record_round_trips_and_stop_leaves_no_jvm(kafka_factory) -> None:
    kafka = kafka_factory()

    assert kafka.start(die_with_parent=True) is True
    pid = kafka.status().pid
    assert await round_trip(kafka.bootstrap, "residency.test.round-trip", b"synthetic") == b"synthetic"
    assert kafka_factory(port=kafka.port, controller_port=kafka.controller_port).start() is False
    assert kafka.stop() is True

    assert not psutil.pid_exists(pid)
    assert not kafka.files.pid_file.exists()
    assert kafka.status().running is False


def test_when_the_parent_is_killed_then_the_jvm_dies_with_it(tmp_path: Path) -> None:
    port, controller_port = free_ports(2)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT_SCRIPT, str(tmp_path / "kafka"), str(port), str(controller_port)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT,
    )  # fmt: skip
    try:
        jvm_pid = int(read_line(parent, timeout=120))
        assert not is_gone(jvm_pid)

        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)

        wait_until(lambda: is_gone(jvm_pid), timeout=15, what=f"JVM {jvm_pid} to exit")
    finally:
        parent.kill()
        parent.wait(timeout=10)


def test_when_started_from_the_cli_then_it_outlives_the_command_until_stopped(tmp_path: Path, capsys) -> None:
    args = Namespace(home=tmp_path / "kafka", port=consecutive_free_ports())
    try:
        assert cmd_start(args) == 0
        assert f"running at 127.0.0.1:{args.port}" in capsys.readouterr().out
        pid = LocalKafka(args.home, port=args.port).status().pid

        assert cmd_status(args) == 0
        assert cmd_stop(args) == 0

        assert "stopped Kafka" in capsys.readouterr().out
        wait_until(lambda: is_gone(pid), timeout=5, what=f"JVM {pid} to exit")
    finally:
        LocalKafka(args.home, port=args.port).stop(timeout=10)
