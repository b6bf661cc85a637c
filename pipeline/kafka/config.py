"""What the local broker is told: its files under home, ``server.properties``, its JVM command line."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

NODE_ID = 1
DEFAULT_HEAP = "1g"  # Kafka's own start script: -Xmx1G -Xms1G
# Kafka's own JVM settings (bin/kafka-run-class.sh, KAFKA_JVM_PERFORMANCE_OPTS). Measured in residency
# bench on 2 cores (docs/benchmarks.md, session 6): with the JVM's defaults and a heap grown from 128 MB,
# the broker spent 395-444 us of CPU per screened event (JIT and G1 concurrent marking as much as
# requests) against 181-262 us with these, CPU the worker shares the box with.
_KAFKA_JVM_OPTS = ("-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
                   "-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxInlineLevel=15")

# slf4j-simple is configured through system properties; it writes to stderr, which goes to broker.log.
_LOGGING = {
    "org.slf4j.simpleLogger.defaultLogLevel": "info",
    "org.slf4j.simpleLogger.showDateTime": "true",
    "org.slf4j.simpleLogger.dateTimeFormat": "yyyy-MM-dd'T'HH:mm:ss.SSS",
    "org.slf4j.simpleLogger.showThreadName": "false",
}


@dataclass(frozen=True)
class BrokerFiles:
    """Where one broker home keeps its data, configuration, log and process records."""

    home: Path

    @property
    def data_dir(self) -> Path:
        """The KRaft log directory (``log.dirs``), formatted once."""
        return self.home / "data"

    @property
    def properties(self) -> Path:
        """``server.properties``, rewritten on each start."""
        return self.home / "server.properties"

    @property
    def log(self) -> Path:
        """The broker's own log; the previous run's is kept as ``broker.log.1``."""
        return self.home / "broker.log"

    @property
    def pid_file(self) -> Path:
        """The running JVM's pid, present only while it runs."""
        return self.home / "broker.pid"

    @property
    def bootstrap_file(self) -> Path:
        """The address clients should use, for other processes to read."""
        return self.home / "bootstrap"

    @property
    def formatted_marker(self) -> Path:
        """Written by ``kafka-storage format``; its presence means the data dir is ready."""
        return self.data_dir / "meta.properties"


def new_cluster_id(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """A Kafka cluster id: 16 random bytes, base64url without padding, never starting with '-'."""
    while True:
        cluster_id = base64.urlsafe_b64encode(random_bytes(16)).decode("ascii").rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka's own rule: such ids read as CLI flags
            return cluster_id


def read_cluster_id(meta_properties: Path) -> str | None:
    """The ``cluster.id`` written by ``kafka-storage format``, or None when not formatted."""
    try:
        lines = meta_properties.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    return next((line.split("=", 1)[1].strip() for line in lines if line.startswith("cluster.id=")), None)


def server_properties(port: int, controller_port: int, data_dir: Path) -> dict[str, str]:
    """Properties for one combined broker+controller on 127.0.0.1, sized for a 2-core machine."""
    return {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        # The project creates every topic itself; a typo must fail, not invent a topic.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "log.segment.bytes": str(64 * 1024 * 1024),
        "log.index.size.max.bytes": str(1024 * 1024),
    }


def render_properties(properties: Mapping[str, str]) -> str:
    """``key=value`` lines in the Java properties format."""
    return "".join(f"{key}={value.replace(chr(92), chr(92) * 2)}\n" for key, value in properties.items())


def jvm_command(java: str, libs: Path, main_class: str, *args: str, heap: str = DEFAULT_HEAP) -> list[str]:
    """The command line that runs ``main_class`` from the cached jars: a fixed heap (no resizing while
    it runs) and Kafka's own JVM settings."""
    system_properties = [f"-D{key}={value}" for key, value in _LOGGING.items()]
    return [
        java, f"-Xmx{heap}", f"-Xms{heap}", *_KAFKA_JVM_OPTS, "-XX:+ExitOnOutOfMemoryError", "-XX:-UsePerfData",
        "-Djava.awt.headless=true", *system_properties, "-cp", f"{libs}/*", main_class, *args,
    ]  # fmt: skip


def secured_properties(port: int, sasl_port: int, controller_port: int, users: Mapping[str, str],
                       rack: str | None = None) -> dict[str, str]:
    """Overrides for a broker with ACLs on: SASL/PLAIN for ``users`` on ``sasl_port``, the KRaft
    StandardAuthorizer, and the loopback PLAINTEXT listener (ANONYMOUS) as the admin super user.

    For tests and local trials of ``residency acls``; ``rack`` sets ``broker.rack``.
    """
    credentials = " ".join(f'user_{name}="{secret}"' for name, secret in users.items())
    jaas = f"org.apache.kafka.common.security.plain.PlainLoginModule required {credentials};"
    props = {
        "listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port},"
                     f"CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS",
        "allow.everyone.if.no.acl.found": "false",
    }
    if rack:
        props["broker.rack"] = rack
    return props


def joining_broker_properties(node_id: int, port: int, quorum_controller_port: int,
                              rack: str | None = None) -> dict[str, str]:
    """Overrides for a broker-only node that joins the cluster whose controller listens on
    ``quorum_controller_port`` (a second broker on loopback, e.g. with another ``broker.rack``).

    Format its home with the first node's cluster id (``LocalKafka(cluster_id=...)``).
    """
    props = {
        "process.roles": "broker",
        "node.id": str(node_id),
        "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{quorum_controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
    }
    if rack:
        props["broker.rack"] = rack
    return props
