"""``LocalKafka``: one Apache Kafka broker (KRaft, combined roles) on 127.0.0.1, owned by a home dir."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.kafka import artifacts, config, probe, process, tools
from pipeline.kafka.errors import BrokerDiedError, BrokerError, PortInUseError

DEFAULT_VERSION = "4.1.1"
DEFAULT_PORT = 9092
_POLL_S = 0.25


def report_to_stderr(line: str) -> None:
    """Default progress sink: one human-readable line on stderr."""
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class BrokerStatus:
    """What ``LocalKafka.status()`` found for one home."""

    running: bool
    answering: bool
    pid: int | None
    bootstrap: str
    data_dir: Path
    log: Path


class LocalKafka:
    """A single-node Kafka whose data, config, log and pid file live under ``home``.

    The jars are fetched once into ``cache_dir`` (shared between homes and runs).
    ``env`` supplies PATH/JAVA_HOME for finding Java and Maven and the JVM's environment.
    """

    def __init__(
        self,
        home: Path,
        port: int = DEFAULT_PORT,
        controller_port: int | None = None,
        kafka_version: str = DEFAULT_VERSION,
        cache_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        heap: str = config.DEFAULT_HEAP,
        report: Callable[[str], None] = report_to_stderr,
        properties: Mapping[str, str] | None = None,
        cluster_id: str | None = None,
    ) -> None:
        self.home = Path(home).expanduser().resolve()  # the pid check matches this exact path
        self.port = port
        self.controller_port = port + 1 if controller_port is None else controller_port
        self.kafka_version = kafka_version
        self.cache_dir = cache_dir if cache_dir is not None else artifacts.default_cache_dir(kafka_version)
        self.env = dict(os.environ if env is None else env)
        self.heap = heap
        self.files = config.BrokerFiles(self.home)
        # Extra or overriding server.properties, e.g. broker.rack, SASL listeners and an authorizer.
        self.properties = dict(properties or {})
        # A broker joining another node's cluster formats its storage with that cluster's id.
        self._cluster_id = cluster_id
        self._report = report
        self._child: subprocess.Popen[bytes] | None = None
        self._java = "java"  # replaced by the checked path in ensure_artifacts()

    @property
    def bootstrap(self) -> str:
        """The address clients use: ``127.0.0.1:<port>``."""
        return f"{probe.HOST}:{self.port}"

    def ensure_artifacts(self) -> Path:
        """Check Java 17+, fetch the jars with Maven if not yet cached; return the jar folder."""
        self._java = tools.find_java(self.env)
        tools.check_java(self._java, self.env)
        return artifacts.ensure_artifacts(self.cache_dir, self.kafka_version, self.env, self._report)

    def format(self) -> bool:
        """Format the data dir with a new cluster id, once; return True if it was formatted now."""
        if self.files.formatted_marker.exists():
            return False
        libs = self.ensure_artifacts()
        self._write_properties()
        command = config.jvm_command(
            self._java, libs, "kafka.tools.StorageTool",
            "format", "-t", self._cluster_id or config.new_cluster_id(), "-c", str(self.files.properties),
            heap="256m",
        )  # fmt: skip
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=180, check=False)
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            raise BrokerError(f"formatting {self.files.data_dir} failed (exit {result.returncode}):\n{output}")
        return True

    def cluster_id(self) -> str | None:
        """The cluster id this home was formatted with (None before ``format``)."""
        return config.read_cluster_id(self.files.formatted_marker)

    def start(self, wait_timeout: float = 60.0, *, detach: bool = False, die_with_parent: bool = False) -> bool:
        """Start the broker and wait until it serves metadata; reuse one already running from this home.

        Returns True if this call launched the JVM, False if it reused a running broker.
        ``detach=True`` leaves it running after this process exits (daemon mode);
        otherwise it is stopped at interpreter exit. ``die_with_parent=True`` also has the
        kernel kill it if this process dies abruptly; call ``start`` from a long-lived
        thread then (the main thread), since the signal follows the thread that spawned it.
        """
        if detach and die_with_parent:
            raise ValueError("a detached broker cannot also die with its parent")
        running = self._running_pid()
        if running is not None:
            self._reuse(running, wait_timeout)
            return False
        self._refuse_taken_ports()
        libs = self.ensure_artifacts()
        self.format()
        self._launch(libs, die_with_parent)
        try:
            self._wait_ready(wait_timeout)
        except BrokerError:
            self.stop(timeout=10)
            raise
        if not detach:
            atexit.register(self.stop)
        return True

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM the broker's process group, SIGKILL after ``timeout``; True if one was running."""
        atexit.unregister(self.stop)
        pid = self._running_pid()
        if pid is None and self._child is not None and self._child.poll() is None:
            pid = self._child.pid
        if pid is not None:
            child = self._child if self._child is not None and self._child.pid == pid else None
            process.terminate(pid, timeout, child)
        self._child = None
        self.files.pid_file.unlink(missing_ok=True)
        self.files.bootstrap_file.unlink(missing_ok=True)
        return pid is not None

    def status(self) -> BrokerStatus:
        """Whether this home's broker runs and answers, its pid, address and data dir."""
        pid = self._running_pid()
        bootstrap = self._recorded_bootstrap() if pid is not None else self.bootstrap
        answering = pid is not None and probe.kafka_ready(bootstrap, timeout=3.0)
        return BrokerStatus(pid is not None, answering, pid, bootstrap, self.files.data_dir, self.files.log)

    def _running_pid(self) -> int | None:
        pid = process.read_pid(self.files.pid_file)
        if pid is None:
            return None
        if process.is_broker(pid, self.files.properties):
            return pid
        self.files.pid_file.unlink(missing_ok=True)  # stale: that broker is gone
        return None

    def _recorded_bootstrap(self) -> str:
        try:
            return self.files.bootstrap_file.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return self.bootstrap

    def _reuse(self, pid: int, wait_timeout: float) -> None:
        recorded = self._recorded_bootstrap()
        if recorded != self.bootstrap:
            raise BrokerError(
                f"a broker from {self.home} already runs at {recorded} (pid {pid}), not {self.bootstrap}; "
                f"stop it first (residency broker stop) or use its port"
            )
        self._wait_ready(wait_timeout)  # it may still be starting

    def _refuse_taken_ports(self) -> None:
        for port in (self.port, self.controller_port):
            if probe.port_in_use(port):
                raise PortInUseError(
                    f"127.0.0.1:{port} is already in use by another process{probe.port_owner(port)}, "
                    f"not by a broker started from {self.home}; choose another port or stop that process"
                )

    def _write_properties(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        properties = {**config.server_properties(self.port, self.controller_port, self.files.data_dir),
                      **self.properties}
        self.files.properties.write_text(config.render_properties(properties), encoding="utf-8")

    def _launch(self, libs: Path, die_with_parent: bool) -> None:
        self._write_properties()
        process.rotate_log(self.files.log)
        command = config.jvm_command(self._java, libs, "kafka.Kafka", str(self.files.properties), heap=self.heap)
        self._child = process.spawn(command, self.home, self.files.log, self.env, die_with_parent)
        self.files.pid_file.write_text(f"{self._child.pid}\n", encoding="ascii")
        self.files.bootstrap_file.write_text(self.bootstrap + "\n", encoding="ascii")
        self._report(f"starting Kafka {self.kafka_version} at {self.bootstrap} (pid {self._child.pid})...")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._raise_if_died()
            if probe.accepts_connections(self.port) and probe.kafka_ready(self.bootstrap, timeout=5.0):
                return
            time.sleep(_POLL_S)
        raise BrokerError(
            f"Kafka did not answer at {self.bootstrap} within {timeout:.0f}s; "
            f"last lines of {self.files.log}:\n{process.tail(self.files.log)}"
        )

    def _raise_if_died(self) -> None:
        alive = self._child.poll() is None if self._child is not None else self._running_pid() is not None
        if alive:
            return
        exit_code = self._child.returncode if self._child is not None else None
        self._child = None
        self.files.pid_file.unlink(missing_ok=True)
        raise BrokerDiedError(
            f"the Kafka broker exited during start-up (exit {exit_code}); "
            f"last lines of {self.files.log}:\n{process.tail(self.files.log)}"
        )
