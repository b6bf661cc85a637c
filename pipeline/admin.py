"""Topic provisioning and the start-up topic guard, against a real broker.

``apply`` creates every topic the policy implies with explicit partitions and configs (idempotent)
and reports drift; ``check`` lists what is missing or mis-partitioned so the worker can refuse to start.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline.topics import TopicSpec

TOPIC_ALREADY_EXISTS = 36


@dataclass
class TopicReport:
    created: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _admin(bootstrap: str) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)


async def partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partition count of each named topic that exists."""
    counts: dict[str, int] = {}
    for topic in await admin.describe_topics(names):
        if topic.get("error_code", 0) == 0:
            counts[topic["topic"]] = len(topic["partitions"])
    return counts


def _problems(specs: list[TopicSpec], counts: dict[str, int]) -> list[str]:
    problems = []
    for spec in specs:
        have = counts.get(spec.name)
        if have is None:
            problems.append(f"topic {spec.name} is missing")
        elif have != spec.partitions:
            problems.append(f"topic {spec.name} has {have} partitions, the policy says {spec.partitions}")
    return problems


async def check_topics(bootstrap: str, specs: list[TopicSpec]) -> list[str]:
    """What is missing or mis-partitioned; empty when the broker matches the policy."""
    admin = _admin(bootstrap)
    await admin.start()
    try:
        return _problems(specs, await partition_counts(admin, [s.name for s in specs]))
    finally:
        await admin.close()


async def apply_topics(bootstrap: str, specs: list[TopicSpec]) -> TopicReport:
    """Create what is missing; report drift (a wrong partition count) as a problem, never 'fix' it."""
    report = TopicReport()
    admin = _admin(bootstrap)
    await admin.start()
    try:
        counts = await partition_counts(admin, [s.name for s in specs])
        missing = [s for s in specs if s.name not in counts]
        if missing:
            response = await admin.create_topics(
                [NewTopic(s.name, s.partitions, s.replication, topic_configs=s.config) for s in missing]
            )
            for topic, code, message in _topic_errors(response):
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    report.problems.append(f"topic {topic} could not be created: {message or f'error {code}'}")
        counts = await _wait_for_metadata(admin, specs)
        report.created = [s.name for s in missing if s.name in counts]
        report.present = [s.name for s in specs if s.name in counts and s not in missing]
        report.problems += _problems(specs, counts)
    finally:
        await admin.close()
    return report


async def _wait_for_metadata(admin: AIOKafkaAdminClient, specs: list[TopicSpec],
                             timeout_s: float = 15.0) -> dict[str, int]:
    """Partition counts once every topic shows in metadata (new topics take a moment), or at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        counts = await partition_counts(admin, [s.name for s in specs])
        if len(counts) == len(specs) or loop.time() > deadline:
            return counts
        await asyncio.sleep(0.2)


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    rows = []
    for entry in getattr(response, "topic_errors", []):
        topic, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        rows.append((topic, code, message))
    return rows
