"""Unit tests for choosing a broker and for the ``residency broker`` command glue; no JVM runs."""

from __future__ import annotations

import socket
import threading
import time
from argparse import Namespace
from pathlib import Path

import pytest

from pipeline.broker import (
    BrokerChoice,
    MissingToolError,
    cmd_status,
    cmd_stop,
    default_home,
    docker_engine_answers,
    free_port,
    free_ports,
    resolve_bootstrap,
)

NOWHERE_DOCKER = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def test_when_bootstrap_servers_are_set_then_they_are_used_and_nothing_starts(tmp_path: Path) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092,kafka-2:9092", "PATH": ""}

    choice = resolve_bootstrap(env, tmp_path / "kafka")

    assert (choice.bootstrap, choice.kind, choice.started_here) == ("kafka-1:9092,kafka-2:9092", "external", False)
    choice.stop()  # stops nothing it did not start
    assert not (tmp_path / "kafka").exists()


def test_when_nothing_is_available_then_the_error_names_every_way_out_quickly(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path / "empty-bin"), **NOWHERE_DOCKER}
    port, controller = free_ports(2)
    began = time.monotonic()

    with pytest.raises(MissingToolError) as raised:
        resolve_bootstrap(env, tmp_path / "kafka", port=port, controller_port=controller,
                          report=lambda line: None)

    assert time.monotonic() - began < 15.0  # falls through at once; a generous bound still catches a hang
    assert "openjdk-17-jre-headless" in str(raised.value)
    assert "KAFKA_BOOTSTRAP_SERVERS" in str(raised.value)


def test_when_the_docker_socket_is_missing_then_docker_does_not_answer() -> None:
    assert docker_engine_answers(NOWHERE_DOCKER) is False


def test_when_docker_host_is_tcp_and_no_docker_cli_then_docker_does_not_answer() -> None:
    assert docker_engine_answers({"DOCKER_HOST": "tcp://127.0.0.1:1", "PATH": ""}) is False


def test_when_the_docker_socket_answers_ping_then_docker_answers(tmp_path: Path) -> None:
    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen()
        answer = threading.Thread(target=_answer_one_ping, args=(server,), daemon=True)
        answer.start()

        assert docker_engine_answers({"DOCKER_HOST": f"unix://{path}"}) is True
        answer.join(timeout=5)


def _answer_one_ping(server: socket.socket) -> None:
    connection, _ = server.accept()
    with connection:
        connection.recv(1024)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")


def test_a_choice_stops_what_it_started_once() -> None:
    stops: list[str] = []
    choice = BrokerChoice("127.0.0.1:1", "local", lambda: stops.append("stopped"))

    choice.stop()
    choice.stop()

    assert stops == ["stopped"]
    assert choice.started_here is True


# --- CLI glue ---------------------------------------------------------------------------------


def test_default_home_follows_residency_home(tmp_path: Path) -> None:
    assert default_home({"RESIDENCY_HOME": str(tmp_path)}) == tmp_path / "kafka"
    assert default_home({}) == Path.home() / ".cache" / "residency" / "kafka"


def test_when_no_broker_runs_then_status_exits_1_and_stop_exits_0(tmp_path: Path, capsys) -> None:
    args = Namespace(home=tmp_path / "kafka", port=free_port())

    assert cmd_status(args) == 1
    assert cmd_stop(args) == 0
    output = capsys.readouterr().out
    assert f"no Kafka running from {tmp_path / 'kafka'}" in output
