"""Every metric the fleet exports, created in one place against a given registry.

Labels are bounded sets (dataset, outcome, reason class, finding type); never a payload or an event id.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable
from typing import TYPE_CHECKING, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pipeline.audit.report import FindingKind

if TYPE_CHECKING:
    from pipeline.outputs import Prepared

# What a verification of R.audit can find (manifest_mismatch concerns bundles only).
AUDIT_FINDING_KINDS = tuple(kind for kind in get_args(FindingKind) if kind != "manifest_mismatch")


LOOP_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


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
        self.screen_latency = Histogram(
            "residency_screen_latency_seconds", "Time to screen one record (parse, rules, masking, detection)",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=registry)
        self.ingress_to_cleared = Histogram(
            "residency_ingress_to_cleared_seconds",
            "From the ingress record's timestamp to the broker's ack of its cleared record",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0), registry=registry)
        self.event_loop_lag = Histogram(
            "residency_event_loop_lag_seconds",
            "How late a 100 ms timer on the worker's event loop wakes: how long something held the loop",
            buckets=LOOP_LAG_BUCKETS, registry=registry)
        self.audit_checkpoint_age = Gauge(
            "residency_audit_checkpoint_age_seconds", "Seconds since this worker last signed an audit checkpoint",
            registry=registry)
        self.audit_verify_failures = Counter(
            "residency_audit_verify_failures",
            "Bad records found by this worker's verification of its audit chain partitions, by finding kind",
            ["kind"], registry=registry)
        for kind in AUDIT_FINDING_KINDS:  # every series exists at 0, so increase() sees the first failure
            self.audit_verify_failures.labels(kind)
        self.audit_verified_entries = Counter(
            "residency_audit_verified_entries", "Audit chain entries this worker has verified", registry=registry)
        self.held_backlog = Gauge("residency_held_backlog", "Holds awaiting a decision on this worker",
                                  registry=registry)
        self.hold_age = Gauge("residency_hold_age_seconds", "Age of this worker's oldest open hold",
                              registry=registry)
        self.hold_ttl = Gauge("residency_hold_ttl_seconds", "TTL of this worker's oldest open hold (0: none)",
                              registry=registry)
        self.approval_latency = Histogram(
            "residency_approval_latency_seconds", "From hold to its release, rejection or expiry",
            buckets=(1, 10, 60, 300, 900, 3600, 4 * 3600, 86_400, 7 * 86_400), registry=registry)
        self.disallowed_broker_rack = Gauge(
            "residency_disallowed_broker_rack",
            "Brokers in the cluster metadata whose rack the policy does not allow (consumption stops when > 0)",
            registry=registry)
        self.consumer_lag = Gauge("residency_consumer_lag", "Records not yet committed, per source partition",
                                  ["topic", "partition"], registry=registry)

    def on_holds(self, backlog: int, oldest_age_s: float, oldest_ttl_s: float) -> None:
        self.held_backlog.set(backlog)
        self.hold_age.set(oldest_age_s)
        self.hold_ttl.set(oldest_ttl_s)

    def on_lag(self, lags: dict[tuple[str, int], int]) -> None:
        """Replace the lag series with ``lags`` (partitions no longer owned disappear)."""
        self.consumer_lag.clear()
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic, str(partition)).set(lag)

    def on_screened(self, dataset: str, screened: Iterable[Prepared]) -> None:
        """Count a batch: one ``inc`` per series it touched (a labels lookup per event cost ~10 us)."""
        events: Tally[str] = Tally()
        reasons: Tally[tuple[str, str]] = Tally()
        findings: Tally[str] = Tally()
        masked: Tally[str] = Tally()
        for d in screened:
            outcome = d.outcome
            events[outcome] += 1
            if d.reason != "cleared":
                reasons[(outcome, d.reason.split(":", 1)[0])] += 1
            if d.finding_types:
                findings.update(d.finding_types)
            if d.mask_strategies:
                masked.update(d.mask_strategies)
        for outcome, n in events.items():
            self.events.labels(dataset, outcome).inc(n)
        for (outcome, reason), n in reasons.items():
            self.reasons.labels(dataset, outcome, reason).inc(n)
        for kind, n in findings.items():
            self.findings.labels(dataset, kind).inc(n)
        for strategy, n in masked.items():
            self.masked.labels(dataset, strategy).inc(n)
