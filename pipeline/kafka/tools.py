"""Find Java and Maven on the PATH the caller hands in, and check Java is new enough."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from pipeline.kafka.errors import MissingToolError

MIN_JAVA_MAJOR = 17
JAVA_INSTALL = "install Java 17+ (Debian: apt-get install openjdk-17-jre-headless)"
MAVEN_INSTALL = "install Maven (Debian: apt-get install maven)"
BOTH_INSTALL = (
    "install Java 17+ (Debian: apt-get install openjdk-17-jre-headless) "
    "and Maven (apt-get install maven)"
)

_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def which(name: str, env: Mapping[str, str]) -> str | None:
    """Look ``name`` up on ``env["PATH"]`` only, so callers and tests control the search."""
    return shutil.which(name, path=env.get("PATH", ""))


def find_java(env: Mapping[str, str]) -> str:
    """Return the ``java`` to run: ``$JAVA_HOME/bin/java`` if set, else the one on PATH."""
    java_home = env.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = which("java", env)
    if found is None:
        raise MissingToolError(f"the local Kafka broker needs `java`, which is not on PATH: {BOTH_INSTALL}")
    return found


def find_maven(env: Mapping[str, str]) -> str:
    """Return the ``mvn`` on PATH; it is needed only to fetch the broker jars the first time."""
    found = which("mvn", env)
    if found is None:
        raise MissingToolError(
            f"fetching the Kafka jars needs `mvn`, which is not on PATH: {MAVEN_INSTALL}"
        )
    return found


def parse_java_major(version_output: str) -> int:
    """Read the major version from ``java -version`` output ("1.8.0_292" is 8, "17.0.15" is 17)."""
    match = _VERSION.search(version_output)
    if match is None:
        raise MissingToolError(f"could not read the Java version from `java -version`; {JAVA_INSTALL}")
    first, second = int(match.group(1)), match.group(2)
    return int(second) if first == 1 and second is not None else first


def check_java(java: str, env: Mapping[str, str]) -> int:
    """Run ``java -version`` and refuse anything older than Java 17; return the major version."""
    result = subprocess.run(
        [java, "-version"], env=dict(env), capture_output=True, text=True, timeout=60, check=False
    )
    major = parse_java_major(result.stderr + result.stdout)
    if major < MIN_JAVA_MAJOR:
        raise MissingToolError(f"{java} is Java {major}; Kafka needs Java {MIN_JAVA_MAJOR}+: {JAVA_INSTALL}")
    return major
