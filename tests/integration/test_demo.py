"""`residency demo` as a user runs it: it finishes with every event accounted for, and Ctrl-C at any
point leaves no broker or worker behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO, wait_for

pytestmark = pytest.mark.integration


def demo(home: Path, events: int, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "demo", "--events", str(events), "--home", str(home)],
        cwd=REPO, env={**environment, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )


def processes_under(home: Path) -> list[psutil.Process]:
    """Live processes whose command line names a path under ``home`` (the demo's broker and worker)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and any(str(home) in arg for arg in proc.info["cmdline"] or ()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_when_the_demo_runs_then_it_exits_0_with_every_event_accounted_for(tmp_path):
    proc = demo(tmp_path, 600)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "600 of 600 produced; 0 without outcome, 0 unexpected, 0 raw values leaked" in out
    assert "audit trail: OK" in out
    assert processes_under(tmp_path) == []


@pytest.mark.parametrize("when", ["worker started", "produced:"])
def test_when_the_demo_is_interrupted_then_nothing_it_started_survives(tmp_path, when):
    proc = demo(tmp_path, 20_000)
    lines: list[str] = []

    def reached() -> bool:
        line = proc.stdout.readline()
        lines.append(line)
        return when in line or proc.poll() is not None

    wait_for(reached, 240, f"the demo to print {when!r}", interval=0)
    assert proc.poll() is None, "".join(lines)
    assert processes_under(tmp_path), "the demo should have a broker and a worker running by now"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 130, "".join(lines) + out
    wait_for(lambda: processes_under(tmp_path) == [], 30, "every demo process to exit")
