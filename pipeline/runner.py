"""A worker as a separate operating-system process: used by the demo, the tests and the benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from pipeline.kafka.process import spawn


class WorkerProcess:
    """``residency worker`` in a child process that dies with its parent (even on kill -9)."""

    def __init__(self, policy: Path, bootstrap: str, data_dir: Path, web_port: int, log_path: Path,
                 env: Mapping[str, str] | None = None) -> None:
        self.command = [sys.executable, "-m", "pipeline.cli", "worker", "--policy", str(policy),
                        "--bootstrap", bootstrap, "--web-port", str(web_port), "--data-dir", str(data_dir)]
        self.env = {**os.environ, **(env or {})}
        self.data_dir = data_dir
        self.web_port = web_port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = spawn(self.command, Path.cwd(), self.log_path, self.env, die_with_parent=True)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no shutdown, no commit, no flush."""
        if self.alive:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc is None:
            return None
        if self.alive:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_exit(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.alive and time.monotonic() < deadline:
            time.sleep(0.1)
        return None if self.proc is None else self.proc.poll()
