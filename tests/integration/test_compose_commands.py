"""deploy/compose without Docker: run the very commands the Compose services run (the secrets job,
the topics job, the worker's shell script and its health check) against the test broker, with each
container path mapped to a host path from the service's own mounts. Proves the worker's command
line starts and turns healthy as written; the images themselves are not built here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from pipeline.broker import free_port
from pipeline.kafka.process import spawn
from tests.conftest import REPO, wait_for

pytestmark = pytest.mark.integration
COMPOSE_DIR = REPO / "deploy" / "compose"
BIN = Path(sys.executable).parent  # where `pip install` put the `residency` console script


def _services() -> dict[str, dict]:
    return yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())["services"]


def _mapping(service: dict, volumes: dict[str, Path]) -> dict[str, str]:
    """Container path -> host path, from the service's bind mounts and named volumes."""
    mapping = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        host = (COMPOSE_DIR / source).resolve() if source.startswith(".") else volumes[source]
        mapping[target] = str(host)
    return mapping


def _translate(text: str, mapping: dict[str, str]) -> str:
    for container, host in sorted(mapping.items(), key=lambda item: -len(item[0])):
        text = text.replace(container, host)
    return text


def _env(service: dict, mapping: dict[str, str], bootstrap: str, port: int) -> dict[str, str]:
    env = {k: _translate(str(v), mapping) for k, v in service.get("environment", {}).items()}
    assert env.pop("KAFKA_BOOTSTRAP_SERVERS") == "kafka:9092"
    env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    if "RESIDENCY_WEB_PORT" in env:
        env["RESIDENCY_WEB_PORT"] = str(port)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RESIDENCY_", "KAFKA_"))}
    return {**clean, "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", "PYTHONPATH": str(REPO), **env}


def test_the_compose_jobs_and_worker_command_start_a_healthy_worker(kafka_bootstrap, tmp_path: Path):
    services = _services()
    volumes = {name: tmp_path / name for name in ("residency-secrets", "residency-data")}
    for path in volumes.values():
        path.mkdir()
    port = free_port()

    secrets = services["secrets"]
    mapping = _mapping(secrets, volumes)
    argv = [_translate(a, mapping) for a in secrets["entrypoint"] + secrets["command"]]
    assert argv[0] == "python"
    done = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env=_env(secrets, mapping, kafka_bootstrap, port))
    assert done.returncode == 0, done.stderr

    topics = services["topics"]
    mapping = _mapping(topics, volumes)
    argv = ["residency", *[_translate(a, mapping) for a in topics["command"]]]  # the image's ENTRYPOINT
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env=_env(topics, mapping, kafka_bootstrap, port))
    assert done.returncode == 0, done.stdout + done.stderr

    worker = services["worker"]
    mapping = _mapping(worker, volumes)
    # Compose turns `$$` into a literal `$` before the shell sees the script.
    argv = [*worker["entrypoint"], *[_translate(a, mapping).replace("$$", "$") for a in worker["command"]]]
    log = tmp_path / "worker.log"
    proc = spawn(argv, tmp_path, log, _env(worker, mapping, kafka_bootstrap, port), die_with_parent=True)
    try:
        check = worker["healthcheck"]["test"]
        assert check[0] == "CMD"
        probe = [sys.executable if check[1] == "python" else check[1],
                 *[a.replace(str(worker["environment"]["RESIDENCY_WEB_PORT"]), str(port)) for a in check[2:]]]

        def healthy() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0

        wait_for(healthy, 120, "the compose worker's health check to pass", interval=1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:  # Prometheus' target
            assert b"residency_ready 1.0" in response.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=60)  # within the service's stop_grace_period
    assert code == 0, log.read_text()[-3000:]
