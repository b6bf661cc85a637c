"""The Kafka broker a run talks to, and the ``residency broker start|stop|status`` commands.

Order of choice (:func:`resolve_bootstrap`): ``KAFKA_BOOTSTRAP_SERVERS`` when set; else Kafka in
a testcontainer when a Docker engine answers; else a real Apache Kafka (KRaft, single node) that
the project fetches from Maven Central once and runs on 127.0.0.1 (:class:`LocalKafka`).
"""

from __future__ import annotations

import sys
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path

from pipeline.kafka.choice import BrokerChoice, docker_engine_answers, resolve_bootstrap
from pipeline.kafka.errors import BrokerDiedError, BrokerError, MissingToolError, PortInUseError
from pipeline.kafka.local import DEFAULT_PORT, DEFAULT_VERSION, BrokerStatus, LocalKafka
from pipeline.kafka.probe import free_port, free_ports

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_VERSION",
    "BrokerChoice",
    "BrokerDiedError",
    "BrokerError",
    "BrokerStatus",
    "LocalKafka",
    "MissingToolError",
    "PortInUseError",
    "cmd_start",
    "cmd_status",
    "cmd_stop",
    "default_home",
    "docker_engine_answers",
    "free_port",
    "free_ports",
    "resolve_bootstrap",
]


def default_home(env: Mapping[str, str]) -> Path:
    """The broker home the CLI uses: ``$RESIDENCY_HOME/kafka``, else ``~/.cache/residency/kafka``."""
    residency_home = env.get("RESIDENCY_HOME")
    if residency_home:
        return Path(residency_home).expanduser() / "kafka"
    return Path.home() / ".cache" / "residency" / "kafka"


def cmd_start(args: Namespace) -> int:
    """``residency broker start``: run the local broker as a daemon that outlives the command."""
    kafka = _local_kafka(args)
    try:
        launched = kafka.start(detach=True)
    except BrokerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    status = kafka.status()
    already = "" if launched else "already "
    print(
        f"Kafka {kafka.kafka_version} {already}running at {status.bootstrap} (pid {status.pid}), "
        f"data in {status.data_dir}, log in {status.log}"
    )
    return 0


def cmd_stop(args: Namespace) -> int:
    """``residency broker stop``: stop the broker started from ``args.home``, if any."""
    kafka = _local_kafka(args)
    status = kafka.status()
    try:
        stopped = kafka.stop()
    except BrokerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if stopped:
        print(f"stopped Kafka at {status.bootstrap} (pid {status.pid}); data kept in {status.data_dir}")
    else:
        print(f"no Kafka running from {kafka.home}")
    return 0


def cmd_status(args: Namespace) -> int:
    """``residency broker status``: 0 if the broker from ``args.home`` runs and answers, else 1."""
    kafka = _local_kafka(args)
    status = kafka.status()
    if not status.running:
        print(f"no Kafka running from {kafka.home} (start one with: residency broker start)")
        return 1
    if not status.answering:
        print(f"Kafka process {status.pid} is up but not answering at {status.bootstrap}; see {status.log}")
        return 1
    print(
        f"Kafka {kafka.kafka_version} running at {status.bootstrap} (pid {status.pid}), "
        f"data in {status.data_dir}"
    )
    return 0


def _local_kafka(args: Namespace) -> LocalKafka:
    return LocalKafka(Path(args.home), port=getattr(args, "port", DEFAULT_PORT))
