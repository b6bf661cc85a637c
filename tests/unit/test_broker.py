"""Unit tests for the local broker's parts: config, Java and Maven, the jar cache, LocalKafka without a JVM."""

from __future__ import annotations

import base64
import os
import socket
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pipeline.broker import BrokerDiedError, LocalKafka, MissingToolError, PortInUseError, free_port, free_ports
from pipeline.kafka import artifacts, config, tools
from pipeline.kafka.probe import port_in_use

NOWHERE_DOCKER = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def fake_java(bin_dir: Path, version_line: str) -> Path:
    """A stand-in ``java`` that only answers ``-version``, as the real one does, on stderr."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    java = bin_dir / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    return java


@pytest.fixture
def kafka_factory(tmp_path: Path):
    """LocalKafka instances in a private home, with an empty PATH unless told otherwise."""

    def make(**overrides) -> LocalKafka:
        options = {
            "home": tmp_path / "kafka",
            "port": 9092,
            "cache_dir": tmp_path / "jars",
            "env": {"PATH": str(tmp_path / "empty-bin"), **NOWHERE_DOCKER},
            "report": lambda line: None,
        }
        return LocalKafka(**{**options, **overrides})

    return make


# --- server.properties -------------------------------------------------------------------


def test_when_ports_are_given_then_both_listeners_bind_loopback_only(tmp_path: Path) -> None:
    properties = config.server_properties(29092, 29093, tmp_path / "data")

    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert properties["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert properties["controller.quorum.voters"] == "1@127.0.0.1:29093"
    assert properties["log.dirs"] == str(tmp_path / "data")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("process.roles", "broker,controller"),
        ("auto.create.topics.enable", "false"),
        ("offsets.topic.replication.factor", "1"),
        ("transaction.state.log.replication.factor", "1"),
        ("transaction.state.log.min.isr", "1"),
        ("group.initial.rebalance.delay.ms", "0"),
        ("controller.listener.names", "CONTROLLER"),
        ("inter.broker.listener.name", "PLAINTEXT"),
    ],
)
def test_single_node_settings_are_fixed(tmp_path: Path, key: str, expected: str) -> None:
    assert config.server_properties(9092, 9093, tmp_path)[key] == expected


def test_when_properties_are_rendered_then_each_is_one_line_and_backslashes_are_escaped() -> None:
    text = config.render_properties({"a.b": "1", "log.dirs": r"C:\data"})

    assert text == "a.b=1\nlog.dirs=C:\\\\data\n"


def test_jvm_command_runs_the_main_class_from_the_cached_jars_with_a_fixed_heap(tmp_path: Path) -> None:
    command = config.jvm_command("/usr/bin/java", tmp_path / "libs", "kafka.Kafka", "server.properties")

    assert command[0] == "/usr/bin/java"
    assert "-Xmx1g" in command and "-Xms1g" in command
    assert "-XX:+UseG1GC" in command and "-XX:MaxGCPauseMillis=20" in command  # Kafka's own settings
    assert command[command.index("-cp") + 1] == f"{tmp_path / 'libs'}/*"
    assert command[-2:] == ["kafka.Kafka", "server.properties"]


# --- cluster id ----------------------------------------------------------------------------


def test_cluster_id_is_sixteen_bytes_in_unpadded_base64url() -> None:
    cluster_id = config.new_cluster_id()

    assert len(cluster_id) == 22
    assert "=" not in cluster_id
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_when_random_bytes_would_start_the_id_with_a_dash_then_new_bytes_are_drawn() -> None:
    draws = iter([b"\xf8" + bytes(15), b"\x04" + bytes(15)])  # 0xf8 encodes to a leading '-'

    cluster_id = config.new_cluster_id(lambda size: next(draws))

    assert cluster_id.startswith("B")


def test_cluster_ids_differ_between_calls() -> None:
    assert len({config.new_cluster_id() for _ in range(50)}) == 50


# --- java and maven --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_292"', 8),
        ('openjdk version "25-ea" 2025-09-16', 25),
    ],
)
def test_java_major_version_is_read_from_java_version_output(output: str, major: int) -> None:
    assert tools.parse_java_major(output) == major


def test_when_java_is_not_on_path_then_the_error_names_what_to_install(kafka_factory) -> None:
    kafka = kafka_factory()

    with pytest.raises(MissingToolError) as raised:
        kafka.ensure_artifacts()

    message = str(raised.value)
    assert "apt-get install openjdk-17-jre-headless" in message
    assert "apt-get install maven" in message


def test_when_java_is_too_old_then_it_is_refused(tmp_path: Path, kafka_factory) -> None:
    fake_java(tmp_path / "bin", 'java version "1.8.0_292"')
    kafka = kafka_factory(env={"PATH": str(tmp_path / "bin")})

    with pytest.raises(MissingToolError, match=r"Java 8; Kafka needs Java 17\+"):
        kafka.ensure_artifacts()


def test_when_jars_are_not_cached_and_maven_is_missing_then_the_error_names_maven(
    tmp_path: Path, kafka_factory
) -> None:
    fake_java(tmp_path / "bin", 'openjdk version "17.0.15" 2025-04-15')
    kafka = kafka_factory(env={"PATH": str(tmp_path / "bin")})

    with pytest.raises(MissingToolError, match=r"needs `mvn`.*apt-get install maven"):
        kafka.ensure_artifacts()


def test_when_jars_are_cached_then_maven_is_not_needed(tmp_path: Path, kafka_factory) -> None:
    fake_java(tmp_path / "bin", 'openjdk version "21" 2023-09-19')
    libs = artifacts.libs_dir(tmp_path / "jars")
    libs.mkdir(parents=True)
    (libs / ".complete").write_text("4.1.1\n")
    kafka = kafka_factory(env={"PATH": str(tmp_path / "bin")})

    assert kafka.ensure_artifacts() == libs


def test_when_java_home_is_set_then_its_java_is_preferred(tmp_path: Path) -> None:
    java = fake_java(tmp_path / "jdk" / "bin", 'openjdk version "17"')

    assert tools.find_java({"JAVA_HOME": str(tmp_path / "jdk"), "PATH": ""}) == str(java)


def test_pom_names_kafka_and_a_matching_slf4j_binding() -> None:
    pom = ET.fromstring(artifacts.render_pom("4.1.1"))
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    coordinates = {
        (dep.findtext("m:artifactId", namespaces=ns), dep.findtext("m:version", namespaces=ns))
        for dep in pom.iterfind("m:dependencies/m:dependency", ns)
    }

    assert coordinates == {("kafka_2.13", "4.1.1"), ("slf4j-simple", artifacts.SLF4J_VERSION)}


def test_jar_cache_is_per_version_under_the_user_cache(tmp_path: Path) -> None:
    assert artifacts.default_cache_dir("4.1.1", tmp_path) == tmp_path / ".cache/residency/kafka-jars/4.1.1"


# --- LocalKafka without a JVM ---------------------------------------------------------------


def test_controller_port_defaults_to_the_next_port(kafka_factory) -> None:
    kafka = kafka_factory(port=39092)

    assert (kafka.bootstrap, kafka.controller_port) == ("127.0.0.1:39092", 39093)


def test_when_the_port_is_taken_by_another_process_then_start_says_so(kafka_factory) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        kafka = kafka_factory(port=port, controller_port=free_port())

        with pytest.raises(PortInUseError, match=rf"127\.0\.0\.1:{port} is already in use"):
            kafka.start()


def test_when_no_broker_was_started_then_status_says_not_running(kafka_factory) -> None:
    status = kafka_factory().status()

    assert (status.running, status.answering, status.pid) == (False, False, None)


def test_when_the_pid_file_names_another_process_then_it_is_treated_as_stale(kafka_factory) -> None:
    kafka = kafka_factory()
    kafka.home.mkdir(parents=True)
    kafka.files.pid_file.write_text(f"{os.getpid()}\n")  # this pytest process is no broker

    assert kafka.status().running is False
    assert not kafka.files.pid_file.exists()
    assert kafka.stop() is False


def test_free_ports_are_distinct_and_unused() -> None:
    ports = free_ports(3)

    assert len(set(ports)) == 3
    assert not any(port_in_use(port) for port in ports)


def test_free_ports_lie_below_the_ephemeral_range_so_outgoing_connections_cannot_take_them() -> None:
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])

    ports = free_ports(8)

    assert all(10_000 <= port < ephemeral_low for port in ports), ports


def test_when_the_broker_exits_during_start_up_then_the_error_carries_its_last_log_lines(
    tmp_path: Path, kafka_factory
) -> None:
    java = fake_java(tmp_path / "bin", 'openjdk version "17.0.15" 2025-04-15')
    java.write_text(
        "#!/bin/sh\n"
        "case \"$1\" in -version) echo 'openjdk version \"17.0.15\"' >&2; exit 0;; esac\n"
        "i=1; while [ $i -le 30 ]; do echo \"broker line $i\"; i=$((i + 1)); done\n"
        "exit 3\n"
    )
    libs = artifacts.libs_dir(tmp_path / "jars")
    libs.mkdir(parents=True)
    (libs / ".complete").write_text("4.1.1\n")
    kafka = kafka_factory(port=free_port(), controller_port=free_port(), env={"PATH": str(tmp_path / "bin")})
    kafka.files.data_dir.mkdir(parents=True)
    kafka.files.formatted_marker.write_text("already formatted\n")

    with pytest.raises(BrokerDiedError) as raised:
        kafka.start(wait_timeout=30)

    message = str(raised.value)
    assert "exit 3" in message
    assert "broker line 30" in message and "broker line 11" in message
    assert "broker line 10\n" not in message
    assert not kafka.files.pid_file.exists()
