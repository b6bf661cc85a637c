"""Liveness and readiness of one worker.

Ready means: start-up guards passed, tables are not recovering, the worker is not mid-rebalance, and
the broker answered a metadata request recently. A background task asks the broker every few
seconds with its own small client, so a dead broker turns readiness off even while no records flow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

log = logging.getLogger(__name__)


@dataclass
class Health:
    guards_passed: bool = False
    broker_ok_at: float = 0.0
    broker_error: str = ""
    stale_after_s: float = 15.0
    brokers: list[dict[str, Any]] = field(default_factory=list)
    fence_problems: list[str] = field(default_factory=list)  # set when the rack fence closed

    def problems(self, app: Any) -> list[str]:
        """Why the worker is not ready; empty when it is."""
        problems = []
        if not self.guards_passed:
            problems.append("start-up guards have not passed")
        if getattr(app, "in_recovery", False):
            problems.append("recovering tables")
        if getattr(app, "rebalancing", False):
            problems.append("rebalancing")
        problems += self.fence_problems
        if time.monotonic() - self.broker_ok_at > self.stale_after_s:
            problems.append(f"broker unreachable{': ' + self.broker_error if self.broker_error else ''}")
        return problems


async def watch_broker(health: Health, bootstrap: str, interval_s: float = 3.0) -> None:
    """Ask the broker for cluster metadata every ``interval_s``; record success or the error class."""
    admin: AIOKafkaAdminClient | None = None
    while True:
        try:
            if admin is None:
                admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
                await asyncio.wait_for(admin.start(), 5)
            cluster = await asyncio.wait_for(admin.describe_cluster(), 5)
            health.brokers = list(cluster.get("brokers", []))
            health.broker_ok_at = time.monotonic()
            health.broker_error = ""
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable now"
            health.broker_error = type(exc).__name__
            if admin is not None:
                try:
                    await admin.close()
                except Exception:  # noqa: BLE001, S110 - closing a broken client may fail too
                    pass
                admin = None
        await asyncio.sleep(interval_s)
