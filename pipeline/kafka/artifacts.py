"""Fetch the broker jars from Maven Central once, into a cache shared by every run."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from string import Template

from pipeline.kafka.errors import BrokerError
from pipeline.kafka.tools import find_maven

# Kafka 4.1 pulls slf4j-api 1.7.36; the binding must be of the same line or the broker logs nothing.
SLF4J_VERSION = "1.7.36"
_COMPLETE = ".complete"
_FETCH_TIMEOUT_S = 900


def default_cache_dir(kafka_version: str, user_home: Path | None = None) -> Path:
    """Where the jars of one Kafka version live: ``~/.cache/residency/kafka-jars/<version>``."""
    base = user_home if user_home is not None else Path.home()
    return base / ".cache" / "residency" / "kafka-jars" / kafka_version


def render_pom(kafka_version: str) -> str:
    """The pom that names the broker and its logging binding at the given version."""
    template = resources.files("pipeline.kafka").joinpath("pom.xml").read_text(encoding="utf-8")
    return Template(template).substitute(kafka_version=kafka_version, slf4j_version=SLF4J_VERSION)


def libs_dir(cache_dir: Path) -> Path:
    """The folder of jars that goes on the broker's classpath."""
    return cache_dir / "libs"


def artifacts_ready(cache_dir: Path) -> bool:
    """True once a fetch finished; a fetch cut short leaves no marker and is redone."""
    return (libs_dir(cache_dir) / _COMPLETE).is_file()


def ensure_artifacts(
    cache_dir: Path, kafka_version: str, env: Mapping[str, str], report: Callable[[str], None]
) -> Path:
    """Return the jar folder, fetching it with ``mvn`` the first time; safe to call concurrently."""
    if artifacts_ready(cache_dir):
        return libs_dir(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache_dir / ".lock"):
        if not artifacts_ready(cache_dir):  # another process may have fetched while we waited
            _fetch(cache_dir, kafka_version, env, report)
    return libs_dir(cache_dir)


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fetch(cache_dir: Path, kafka_version: str, env: Mapping[str, str], report: Callable[[str], None]) -> None:
    mvn = find_maven(env)
    report(f"fetching Apache Kafka {kafka_version} from Maven Central (first run only)...")
    pom = cache_dir / "pom.xml"
    pom.write_text(render_pom(kafka_version), encoding="utf-8")
    staging = cache_dir / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        mvn, "-B", "-q", "-ntp", "-Dstyle.color=never", "-f", str(pom),
        "dependency:copy-dependencies", f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
    ]  # fmt: skip
    result = subprocess.run(
        command, env=dict(env), capture_output=True, text=True, timeout=_FETCH_TIMEOUT_S, check=False
    )
    broker_jar = staging / f"kafka_2.13-{kafka_version}.jar"
    if result.returncode != 0 or not broker_jar.is_file():
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        raise BrokerError(
            f"mvn could not fetch Apache Kafka {kafka_version} (exit {result.returncode}); "
            f"is Maven Central reachable?\n{tail}"
        )
    (staging / _COMPLETE).write_text(kafka_version + "\n", encoding="utf-8")
    shutil.rmtree(libs_dir(cache_dir), ignore_errors=True)
    staging.rename(libs_dir(cache_dir))
    report(f"Apache Kafka {kafka_version} cached in {libs_dir(cache_dir)}")
