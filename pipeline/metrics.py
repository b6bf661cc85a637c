"""Every metric the fleet exports, created in one place against a given registry.

Labels are bounded sets (dataset, outcome, reason class, finding type); never a payload or an event id.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from schemas.decision import Decision


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events = Counter("residency_events", "Events screened, by dataset and outcome",
                              ["dataset", "outcome"], registry=registry)
        self.findings = Counter("residency_findings", "Detector findings, by dataset and type",
                                ["dataset", "type"], registry=registry)
        self.masked = Counter("residency_masked_fields", "Masked values, by dataset and strategy",
                              ["dataset", "strategy"], registry=registry)
        self.reasons = Counter("residency_reasons", "Non-cleared outcomes, by dataset and reason class",
                               ["dataset", "outcome", "reason"], registry=registry)
        self.ready = Gauge("residency_ready", "1 when this worker is ready", registry=registry)

    def on_screened(self, dataset: str, decisions: Iterable[Decision]) -> None:
        for d in decisions:
            self.events.labels(dataset, d.outcome.value).inc()
            if d.reason != "cleared":
                self.reasons.labels(dataset, d.outcome.value, d.reason.split(":", 1)[0]).inc()
            for f in d.findings:
                self.findings.labels(dataset, f.type).inc()
            for m in d.masked:
                self.masked.labels(dataset, m.strategy).inc()
