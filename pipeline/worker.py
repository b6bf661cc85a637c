"""Start one worker of a regional fleet: load and check everything, then hand over to Faust."""

from __future__ import annotations

import asyncio
import logging

import faust
from prometheus_client import CollectorRegistry

from agents.decide import register_decide
from agents.record import register_record
from agents.screen import register_screen
from pipeline.admin import check_topics
from pipeline.audit import SigningKeyError, load_signing_key
from pipeline.auditlog import AuditAppender
from pipeline.auditwatch import register_audit_watch
from pipeline.app import create_app
from pipeline.console.views import register_console
from pipeline.context import FleetContext
from pipeline.effects import EffectLog
from pipeline.attestation import Attestor
from pipeline.faults import FaultSpecError, fault_hook
from pipeline import faustfix, heap
from pipeline.guards import app_topics, cluster_brokers, namespace_problems, rack_problems, register_rack_watch
from pipeline.identity import approver_verifier
from pipeline.keys import MissingKeyError
from pipeline.logs import configure_logging, logging_config
from pipeline.metrics import Metrics
from pipeline.plan import compile_plans
from pipeline.producer_identity import build_producer_check, refresh_jwks
from pipeline.policy import LoadedPolicy, PolicyError, load_policy
from pipeline.settings import Settings
from pipeline.tables import provenance_table
from pipeline.topics import app_id, topic_specs
from pipeline.web import register_web

log = logging.getLogger(__name__)


class StartupRefused(RuntimeError):
    """A start-up guard failed; the message says what to fix."""


def build_fleet(settings: Settings, loaded: LoadedPolicy, registry: CollectorRegistry | None = None) -> FleetContext:
    """The app with every agent and table registered, ready for a Faust worker."""
    attestor = _attestor(settings)
    try:
        producers = build_producer_check(loaded.policy, settings)
    except ValueError as exc:
        raise StartupRefused(str(exc)) from None
    for name in loaded.policy.identity_off():
        log.warning("dataset %s: producer identity is off (trials only): records are not checked for who wrote them",
                    name)
    try:
        plans = compile_plans(loaded, settings.key_ring(), producers, attestor)
    except MissingKeyError as exc:
        raise StartupRefused(str(exc)) from None
    if settings.audit_signing_key is None:
        raise StartupRefused(
            "no audit signing key: set RESIDENCY_AUDIT_SIGNING_KEY (create one with `residency audit keygen`)"
        )
    try:
        signer = load_signing_key(settings.audit_signing_key)
    except SigningKeyError as exc:
        raise StartupRefused(f"RESIDENCY_AUDIT_SIGNING_KEY: {exc}") from None
    verifier = None
    if any(d.approval is not None for d in loaded.policy.datasets.values()):
        try:
            verifier = approver_verifier(settings.jwks, settings.jwt_issuer, settings.jwt_audience,
                                         settings.jwt_leeway_s)
        except ValueError as exc:
            raise StartupRefused(str(exc)) from None
    faustfix.install()  # before the app builds its consumer: offset bookkeeping at-least-once needs
    app = create_app(settings, loaded.policy.region)
    ctx = FleetContext(settings=settings, loaded=loaded, plans=plans, app=app,
                       metrics=Metrics(registry or CollectorRegistry()), verifier=verifier)
    ctx.provenance = provenance_table(app, loaded.policy.topology.audit_partitions)
    ctx.partitions = {spec.name: spec.partitions for spec in topic_specs(loaded.policy, settings.app_id)}
    ctx.effects = EffectLog(settings.bootstrap_servers, ctx.topics.intents)
    ctx.fault_hook = _test_fault_hook(settings)

    ctx.audit = AuditAppender(
        bootstrap=settings.bootstrap_servers, audit_topic=ctx.topics.audit,
        checkpoints_topic=ctx.topics.audit_checkpoints, signer=signer, producer=lambda: app.producer,
        every_entries=settings.audit_checkpoint_entries, every_seconds=settings.audit_checkpoint_seconds,
    )
    register_screen(ctx)
    register_record(app, ctx)
    try:
        register_audit_watch(app, ctx, signer.public_key_pem())
    except (OSError, SigningKeyError) as exc:
        raise StartupRefused(f"RESIDENCY_AUDIT_TRUSTED_KEYS_FILE: cannot load the trusted public keys "
                             f"({type(exc).__name__}: {exc})") from None
    register_decide(app, ctx)
    register_rack_watch(app, ctx)
    if producers is not None and producers.jwks_source is not None:
        @app.task
        async def refresh_producer_jwks() -> None:
            await refresh_jwks(producers.snapshot, producers.jwks_source, settings.producer_jwks_refresh_s)
    register_web(app, ctx)
    register_console(app, ctx)

    @app.timer(interval=heap.TRIM_INTERVAL_S)
    async def trim_heap() -> None:
        heap.trim()

    outputs = {t for plan in plans.values() for t in (plan.cleared_topic, plan.rejected_topic, plan.held_topic,
                                                      plan.deadletter_topic, *(e.topic for e in plan.egress))}
    check_namespace(loaded.policy.region, app_topics(app) | outputs | set(ctx.partitions))
    return ctx


def _test_fault_hook(settings: Settings):  # noqa: ANN202 - pipeline.screen.FaultHook | None
    """Fault injection for the fault tests, only when test hooks are enabled explicitly."""
    if not settings.test_faults:
        return None
    if not settings.enable_test_hooks:
        log.warning("RESIDENCY_TEST_FAULTS is set but RESIDENCY_ENABLE_TEST_HOOKS is not: ignored")
        return None
    try:
        hook = fault_hook(settings.test_faults)
    except (FaultSpecError, OSError) as exc:
        raise StartupRefused(f"RESIDENCY_TEST_FAULTS: {exc}") from None
    log.warning("TEST FAULT HOOKS ENABLED (never in production)")
    return hook


def _attestor(settings: Settings) -> Attestor:
    if settings.attestation_key is None:
        raise StartupRefused("no attestation key: set RESIDENCY_ATTESTATION_KEY (an Ed25519 key; create one "
                             "with `residency attest keygen`); consumers check cleared records against it")
    try:
        return Attestor(load_signing_key(settings.attestation_key))
    except SigningKeyError as exc:
        raise StartupRefused(f"RESIDENCY_ATTESTATION_KEY: {exc}") from None


def check_namespace(region: str, topics: set[str]) -> None:
    problems = namespace_problems(region, topics)
    if problems:
        raise StartupRefused("\n".join(problems) + f"\nfix: name every topic (egress profile `topic`, "
                             f"RESIDENCY_APP_ID for changelogs) with the prefix {region}.")


def preflight(settings: Settings) -> LoadedPolicy:
    """Every start-up guard: policy valid, region matches, topics in the region's namespace, broker
    racks allowed, topics present and partitioned right."""
    if settings.policy is None:
        raise StartupRefused("no policy file: pass --policy FILE or set RESIDENCY_POLICY")
    try:
        loaded = load_policy(settings.policy)
    except PolicyError as exc:
        raise StartupRefused(str(exc)) from None
    region = loaded.policy.region
    if settings.region and settings.region != region:
        raise StartupRefused(
            f"the policy is for region {region!r} but this fleet is configured for {settings.region!r}; "
            f"use the policy of region {settings.region!r} or fix RESIDENCY_REGION"
        )
    app = settings.app_id or app_id(region)
    specs = topic_specs(loaded.policy, app)
    check_namespace(region, {s.name for s in specs} | {app})
    if loaded.policy.racks:
        bad = rack_problems(loaded.policy.racks, asyncio.run(cluster_brokers(settings.bootstrap_servers)))
        if bad:
            raise StartupRefused("\n".join(bad) + "\nfix: run this fleet on brokers in the allowed racks, "
                                 "or correct `racks` in the policy (a broker without broker.rack counts as outside)")
    problems = asyncio.run(check_topics(settings.bootstrap_servers, specs))
    if problems:
        raise StartupRefused(
            "\n".join(problems) + f"\nrun: residency topics apply --policy {settings.policy}"
        )
    return loaded


def run_worker(settings: Settings) -> int:
    """Run until stopped; returns the exit code. Everything it prints is a log line (JSON by default)."""
    configure_logging(settings.log_level, settings.log_format)
    heap.tune()
    try:
        loaded = preflight(settings)
        ctx = build_fleet(settings, loaded)
    except StartupRefused as exc:
        log.error("refusing to start: %s", exc)
        return 2
    except Exception as exc:  # noqa: BLE001 - logged by type and frames only: a message may quote input
        log.exception("the worker failed to start (%s)", type(exc).__name__)
        return 1
    log.info("worker starting", extra={
        "region": loaded.policy.region, "policy_hash": loaded.hash, "datasets": sorted(ctx.plans),
        "broker": settings.bootstrap_servers})
    worker = faust.Worker(ctx.app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False,
                          logging_config=logging_config(settings.log_level, settings.log_format))
    # At WARNING and above, Faust's terminal spinner sets the root logger to DEBUG to spin on every
    # record: each library debug call (aiokafka logs every send) then builds a LogRecord for nothing.
    worker.spinner = None
    worker.execute_from_commandline()
    return 0
