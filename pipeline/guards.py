"""Fleet guards: the region's topic namespace and the brokers' racks, at start-up and while running.

Start-up guards refuse with a message that says what to fix. While running, a broker whose rack is
not allowed appearing in the cluster metadata closes the fence: every agent stops before its next
batch (so fetching stops once its buffer is full) and ``residency_disallowed_broker_rack`` counts
the brokers at fault (fail closed). The fence opens again, and the agents go on where they stopped,
once fresh metadata lists no such broker: the start-up guard would pass then too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

log = logging.getLogger(__name__)


def namespace_problems(region: str, topics: Iterable[str]) -> list[str]:
    """Every topic outside ``<region>.``: ACLs by prefix would not cover it, and data could leave."""
    prefix = f"{region}."
    return [f"topic {name} is outside the region's namespace (every topic must start with {prefix!r})"
            for name in sorted(set(topics)) if not name.startswith(prefix)]


def app_topics(app: Any) -> set[str]:
    """Every topic the Faust app reads or writes on its own: agent sources and table changelogs."""
    names: set[str] = set()
    for agent in app.agents.values():
        names.update(getattr(agent.channel, "topics", ()) or ())
    for table in app.tables.values():
        names.add(table.changelog_topic.get_topic_name())
    return names


def rack_problems(allowed: list[str], brokers: Iterable[dict[str, Any]]) -> list[str]:
    """Brokers whose rack is not in ``allowed`` (a broker without a rack counts as outside)."""
    if not allowed:
        return []
    problems = []
    for broker in brokers:
        rack = broker.get("rack")
        if rack not in allowed:
            where = f"{broker.get('host')}:{broker.get('port')}"
            problems.append(f"broker {broker.get('node_id')} at {where} has rack {rack!r}, which is not among "
                            f"the policy's racks {allowed}")
    return problems


async def cluster_brokers(bootstrap: str) -> list[dict[str, Any]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        return list((await admin.describe_cluster()).get("brokers", []))
    finally:
        await admin.close()


class RackFence:
    """Closed while the latest cluster metadata lists a broker whose rack is not allowed."""

    def __init__(self, allowed: list[str], gauge: Any) -> None:
        self.allowed = allowed
        self.gauge = gauge
        self.problems: list[str] = []
        self._open = asyncio.Event()
        self._open.set()

    @property
    def closed(self) -> bool:
        return not self._open.is_set()

    def observe(self, brokers: list[dict[str, Any]]) -> str | None:
        """Check the latest metadata; returns ``"closed"`` or ``"opened"`` when this call changed the fence."""
        problems = rack_problems(self.allowed, brokers)
        self.gauge.set(len(problems))
        self.problems = problems
        if problems and not self.closed:
            self._open.clear()
            log.error("consumption stopped (fail closed): %s; it resumes when the broker leaves the cluster; "
                      "fix the cluster or the policy's racks", "; ".join(problems))
            return "closed"
        if not problems and self.closed:
            self._open.set()
            log.warning("consumption resumes: no broker outside the policy's racks in the cluster metadata")
            return "opened"
        return None

    async def wait_open(self) -> None:
        await self._open.wait()


def register_rack_watch(app: Any, ctx: Any, interval_s: float = 1.0) -> RackFence:
    """A timer that feeds ``Health.brokers`` (refreshed every 3 s by pipeline.health) to the fence.

    The fence works through the agents' gate (``FleetContext.gate``), not Faust's
    ``pause_partitions``: a fetch in flight when every source partition is paused hands back records
    that Faust then drops as paused, and the running worker never sees them again (only a restart
    would). A gated agent takes nothing more, its stream buffer fills, and Faust's own flow control
    stops fetching; nothing fetched is acknowledged, so nothing is committed or lost.
    """
    fence = RackFence(list(ctx.policy.racks), ctx.metrics.disallowed_broker_rack)
    ctx.fence = fence

    @app.timer(interval=interval_s)
    async def watch_broker_racks() -> None:
        if ctx.health.brokers:
            fence.observe(ctx.health.brokers)
            ctx.health.fence_problems = list(fence.problems)

    return fence
