"""Which broker a run uses: one named in the environment, a testcontainer, or the local Apache Kafka."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipeline.kafka.errors import BrokerError, MissingToolError
from pipeline.kafka.local import DEFAULT_PORT, LocalKafka, report_to_stderr
from pipeline.kafka.tools import which

BrokerKind = Literal["external", "testcontainers", "local"]
_DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


@dataclass
class BrokerChoice:
    """The broker a run talks to, and how to stop it if, and only if, this run started it."""

    bootstrap: str
    kind: BrokerKind
    _stop: Callable[[], object] | None = field(default=None, repr=False)
    started_here: bool = field(init=False)  # this run started the broker; stays True after stop()

    def __post_init__(self) -> None:
        self.started_here = self._stop is not None

    def stop(self) -> None:
        """Stop the broker if this run started it; an external or reused broker is left running."""
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


def resolve_bootstrap(
    env: Mapping[str, str],
    home: Path,
    *,
    port: int = DEFAULT_PORT,
    controller_port: int | None = None,
    cache_dir: Path | None = None,
    docker_timeout: float = 2.0,
    report: Callable[[str], None] = report_to_stderr,
) -> BrokerChoice:
    """Pick a broker: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else a testcontainer if a Docker
    engine answers, else the local Apache Kafka under ``home`` (which dies with this process)."""
    external = env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        return BrokerChoice(external, "external")
    if docker_engine_answers(env, docker_timeout):
        try:
            return _start_testcontainer()
        except Exception as error:  # noqa: BLE001 - any container failure leaves the local broker
            report(f"Kafka in Docker did not start ({type(error).__name__}); using the local Apache Kafka")
    kafka = LocalKafka(home, port, controller_port, cache_dir=cache_dir, env=env, report=report)
    try:
        launched = kafka.start(die_with_parent=True)
    except MissingToolError as error:
        raise MissingToolError(
            f"{error}; or set KAFKA_BOOTSTRAP_SERVERS=host:port to use a broker you already run "
            f"(no Docker engine answered for testcontainers either)"
        ) from error
    return BrokerChoice(kafka.bootstrap, "local", kafka.stop if launched else None)


def docker_engine_answers(env: Mapping[str, str], timeout: float = 2.0) -> bool:
    """True if the Docker engine named by ``DOCKER_HOST`` (or the default socket) answers a ping."""
    host = env.get("DOCKER_HOST", _DEFAULT_DOCKER_HOST)
    if host.startswith("unix://"):
        return _unix_socket_ping(host.removeprefix("unix://"), timeout)
    docker = which("docker", env)
    if docker is None:
        return False
    try:
        result = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            env=dict(env), capture_output=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def _unix_socket_ping(path: str, timeout: float) -> bool:
    if not Path(path).exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = sock.recv(64).split(b"\r\n", 1)[0]
    except OSError:
        return False
    return status_line.startswith(b"HTTP/1.") and b" 200" in status_line


def _start_testcontainer() -> BrokerChoice:
    try:  # recent testcontainers moved the module; older releases have only the second path
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:
        try:
            from testcontainers.kafka import KafkaContainer
        except ImportError as error:
            raise BrokerError("a Docker engine answers but testcontainers is not installed") from error
    container = KafkaContainer()
    container.start()
    return BrokerChoice(container.get_bootstrap_server(), "testcontainers", container.stop)
