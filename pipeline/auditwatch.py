"""The worker's periodic verification of its audit chain partitions (pipeline/audittail.py),
reading ``R.audit`` from the broker and counting what it finds in ``residency_audit_verify_failures``.

Reading the records and checking hashes and signatures run in a child process
(pipeline/auditchild.py): in a thread the checks held the GIL for hundreds of milliseconds per run and
the event loop waited behind them (ingress-to-cleared p99 went from ~0.4 s to ~1.4 s in `residency
bench`), and reading ten thousand records per partition on the loop spiked it too. The child gets the
range to read and the partition's cursor, and sends back the result and the moved cursor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
from collections.abc import Iterable

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.audit import Finding, load_public_keys
from pipeline.auditchild import lower_priority, read_and_check
from pipeline.audittail import TailState, plan_read, truncation
from pipeline.context import FleetContext
from pipeline.metrics import Metrics

log = logging.getLogger(__name__)
_PEM_END = "-----END PUBLIC KEY-----"


def trusted_pems(own_public_pem: str, extra_pems: str | None) -> tuple[str, ...]:
    """The worker's own public key plus every PEM in ``extra_pems`` (a concatenation of PEMs)."""
    pems = [own_public_pem]
    if extra_pems:
        pems += [chunk.strip() + "\n" + _PEM_END + "\n" for chunk in extra_pems.split(_PEM_END) if chunk.strip()]
    return tuple(pems)


class AuditWatch:
    """Verifies the tail of each owned partition of ``R.audit`` once per :meth:`run`."""

    def __init__(self, *, bootstrap: str, topic: str, pems: tuple[str, ...], max_records: int,
                 metrics: Metrics) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.pems = pems
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.max_records = max_records
        self.metrics = metrics
        self.state = TailState()
        self._client: AIOKafkaConsumer | None = None

    async def run(self, partitions: Iterable[int]) -> list[Finding]:
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        findings: list[Finding] = []
        try:
            consumer = await self._consumer()  # offsets only: nothing assigned, so nothing prefetched here
            begins = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                await self._partition(consumer, tp, begins[tp], ends[tp], findings)
        except BaseException:
            await self.close()  # a fresh client next run
            raise
        finally:
            self._count(findings)
        return findings

    async def _consumer(self) -> AIOKafkaConsumer:
        if self._client is None:
            client = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                      isolation_level="read_committed", request_timeout_ms=10_000)
            await client.start()
            self._client = client
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.stop()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _verifier(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            # spawn, never fork: the worker has threads (Faust's consumer, aiokafka)
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=lower_priority)
        return self._pool

    def _count(self, findings: list[Finding]) -> None:
        for finding in findings:
            self.metrics.audit_verify_failures.labels(finding.kind).inc()
            log.error("audit chain verification failed: %s", finding.describe(), extra={
                "topic": self.topic, "partition": finding.partition, "offset": finding.offset,
                "seq": finding.seq, "reason": finding.kind})

    async def _partition(self, consumer: AIOKafkaConsumer, tp: TopicPartition, begin: int, end: int,
                         findings: list[Finding]) -> None:
        cursor = self.state.cursor(tp.partition)
        if (finding := truncation(cursor, tp.partition, end)) is not None:
            findings.append(finding)
        plan = plan_read(cursor, begin, end, self.max_records)
        if plan is None:
            return
        if plan.skipped:
            log.warning("audit tail verification fell behind: skipped entries (run `residency audit verify` "
                        "for a complete check)", extra={"topic": self.topic, "partition": tp.partition,
                                                        "entries": plan.skipped})
        result, moved = await asyncio.get_running_loop().run_in_executor(
            self._verifier(), read_and_check, self.bootstrap, self.topic, tp.partition, plan.start, plan.stop,
            cursor, begin, self.pems)
        self.state.cursors[tp.partition] = moved
        self.metrics.audit_verified_entries.inc(result.verified)
        if result.finding is not None:
            findings.append(result.finding)


def register_audit_watch(app: faust.App, ctx: FleetContext, own_public_pem: str) -> AuditWatch:
    """Every ``audit_verify_interval_s``, verify the tail of the audit partitions this worker owns."""
    settings = ctx.settings
    extra = settings.audit_trusted_keys_file.read_text() if settings.audit_trusted_keys_file else None
    # A run must span two checkpoints (every N entries) for its anchor to move on.
    budget = max(settings.audit_verify_max_records, 2 * settings.audit_checkpoint_entries + 2)
    pems = trusted_pems(own_public_pem, extra)
    load_public_keys(list(pems))  # a bad key file stops the worker at start-up, not in the verifier
    watch = AuditWatch(bootstrap=settings.bootstrap_servers, topic=ctx.topics.audit,
                       pems=pems, max_records=budget, metrics=ctx.metrics)

    @app.timer(interval=settings.audit_verify_interval_s)
    async def verify_audit_tail() -> None:
        # The record agent owning partition p of R.provenance is the only writer of R.audit[p].
        owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == ctx.topics.provenance}
        try:
            await asyncio.wait_for(watch.run(owned), timeout=max(60.0, settings.audit_verify_interval_s))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the broker away is not a failed verification
            log.warning("audit tail verification could not read the trail (%s); trying again next run",
                        type(exc).__name__)

    @app.on_before_shutdown.connect
    async def close_audit_watch(app: faust.App, **kwargs: object) -> None:  # noqa: ARG001
        await watch.close()

    return watch
