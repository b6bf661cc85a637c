"""Everything the agents share in one fleet process, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import faust

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
