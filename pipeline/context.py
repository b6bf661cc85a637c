"""Everything the agents share in one fleet process, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faust

from pipeline.metrics import Metrics
from pipeline.plan import DatasetPlan
from pipeline.policy import LoadedPolicy
from pipeline.screen import FaultHook
from pipeline.settings import Settings
from pipeline.topics import RegionTopics
from schemas.policy import Policy


@dataclass
class FleetContext:
    settings: Settings
    loaded: LoadedPolicy
    plans: dict[str, DatasetPlan]
    app: faust.App
    metrics: Metrics
    provenance: Any = None
    fault_hook: FaultHook | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def policy(self) -> Policy:
        return self.loaded.policy

    @property
    def topics(self) -> RegionTopics:
        return RegionTopics(self.policy.region)

    @property
    def producer(self) -> Any:
        return self.app.producer
