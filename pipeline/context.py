"""Everything the agents share in one fleet process, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import faust
from aiokafka.errors import KafkaError, KafkaTimeoutError

from pipeline import faustfix
from pipeline.health import Health
from pipeline.metrics import Metrics
from pipeline.plan import DatasetPlan
from pipeline.policy import LoadedPolicy
from pipeline.screen import FaultHook
from pipeline.settings import Settings
from pipeline.topics import RegionTopics
from schemas.policy import Policy

log = logging.getLogger(__name__)
RETRY_FIRST_S = 0.5  # the wait before a batch the broker failed runs again; doubles up to RETRY_MAX_S
RETRY_MAX_S = 5.0


def transient(exc: BaseException) -> bool:
    """A Kafka error a later attempt can get past: the broker restarting, a leader moving, a timeout."""
    return isinstance(exc, KafkaError) and (exc.retriable or isinstance(exc, KafkaTimeoutError))


@dataclass
class FleetContext:
    settings: Settings
    loaded: LoadedPolicy
    plans: dict[str, DatasetPlan]
    app: faust.App
    metrics: Metrics
    provenance: Any = None
    audit: Any = None  # pipeline.auditlog.AuditAppender
    health: Health = field(default_factory=Health)
    effects: Any = None  # pipeline.effects.EffectLog
    partitions: dict[str, int] = field(default_factory=dict)  # topic -> partition count, from the policy
    fault_hook: FaultHook | None = None
    verifier: Any = None  # pipeline.identity.JwtVerifier for approver tokens
    held: Any = None  # the held table (agents/decide.py)
    extras: dict[str, Any] = field(default_factory=dict)
    fence: Any = None  # pipeline.guards.RackFence, closed when a broker with a disallowed rack appears
    screen: Any = None  # agents.screen.ScreenStage, once the worker runs it
    screen_pool: Any = None  # pipeline.screenpool.ScreenPool, while the screen stage runs with helpers

    async def gate(self) -> None:
        """Wait while the fence is closed: an agent emits nothing while a disallowed broker is in the cluster."""
        if self.fence is not None and self.fence.closed:
            await self.fence.wait_open()

    @property
    def policy(self) -> Policy:
        return self.loaded.policy

    @property
    def topics(self) -> RegionTopics:
        return RegionTopics(self.policy.region)

    @contextlib.asynccontextmanager
    async def crash_on_error(self, agent: str) -> AsyncIterator[None]:
        """An agent failed: stop the worker rather than let one agent die while the rest run on.

        Faust acknowledges a failed agent's messages all the same (pipeline.faustfix, defect 6), so
        the worker commits nothing more from here on: a restarted worker processes them again.
        """
        try:
            yield
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            faustfix.stop_commits(self.app.consumer)
            log.error("agent %s failed (%s); stopping the worker", agent, type(exc).__name__)
            await self.app.crash(exc)
            raise

    @property
    def producer(self) -> Any:
        return self.app.producer


async def retrying(agent: str, step: Callable[[], Awaitable[None]], ours: Callable[[], bool] = lambda: True) -> None:
    """Run ``step`` (a batch's effects; it must be safe to run again) until it completes.

    A transient Kafka error waits and runs it again, as the screen stage does, for as long as the
    broker stays away: a restart that took 44 s on a loaded box outlasted aiokafka's own 40 s of
    retries and stopped the worker. Any other error is raised (the agent's ``crash_on_error``).
    Once ``ours()`` is false (the group moved the batch's partitions on) the batch is given up: its
    messages are not acknowledged (pipeline.faustfix, defect 9), so their new owner processes them.
    """
    failures = 0
    while True:
        try:
            return await step()
        except Exception as exc:
            if not transient(exc):
                raise
            if not ours():
                log.warning("agent %s: the broker failed a request (%s) and the batch's partitions moved on; "
                            "their new owner processes it", agent, type(exc).__name__)
                return
            failures += 1
            delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** min(failures - 1, 5))
            log.warning("agent %s: the broker failed a request (%s); retrying the batch in %.1fs",
                        agent, type(exc).__name__, delay)
            await asyncio.sleep(delay)
