"""Fault scenarios on a real broker with real worker processes: shared by tests/faults and bench/soak.py.

Nothing here imports pytest, so the soak script runs the same code outside the test runner. Every
wait has a deadline (:class:`Deadline`), every check reads the topics from the outside.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import secrets
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.admin import apply_topics
from pipeline.generator import GeneratedEvent, generate
from pipeline.harness import collect, outcome_topics, produce, read_topic
from pipeline.kafka.probe import free_port
from pipeline.policy import LoadedPolicy, load_policy
from pipeline.provenance import fragments_of
from pipeline.runner import WorkerProcess
from pipeline.topics import RegionTopics, app_id, topic_specs
from tests.policies import example_policy_text
from tests.waiting import Deadline, wait_for as wait_until  # noqa: F401 - the fault tests import both from here

LAG = re.compile(r'^residency_consumer_lag\{partition="(\d+)",topic="([^"]+)"\} ([0-9.e+-]+)$', re.M)


def say(line: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {line}", flush=True)


def write_policy(root: Path, region: str, replace: dict[str, str] | None = None) -> LoadedPolicy:
    text = example_policy_text(region, replace)
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"policy-{region}.yaml"
    path.write_text(text)
    return load_policy(path)


def fresh_region(prefix: str) -> str:
    """A region name never used before, so a reused broker's old topics cannot interfere."""
    return f"{prefix}{secrets.token_hex(3)}"


@dataclass
class Fleet:
    """Everything needed to start workers of one regional fleet against one broker."""

    bootstrap: str
    loaded: LoadedPolicy
    root: Path
    env: dict[str, str]
    started: list[WorkerProcess] = field(default_factory=list)

    @property
    def region(self) -> str:
        return self.loaded.policy.region

    @property
    def names(self) -> RegionTopics:
        return RegionTopics(self.region)

    def provision(self) -> None:
        report = asyncio.run(apply_topics(self.bootstrap, topic_specs(self.loaded.policy)))
        assert report.ok, report.problems

    def worker(self, name: str, env: dict[str, str] | None = None) -> WorkerProcess:
        """Start a worker; the same name reuses the same data dir (RocksDB survives a kill -9)."""
        worker = WorkerProcess(self.loaded.path, self.bootstrap, self.root / name / "data", free_port(),
                               self.root / name / "worker.log", {**self.env, **(env or {})})
        self.started.append(worker.start())
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop(timeout=15)


def fleet_env(root: Path, signing_key: str, idp: Any) -> dict[str, str]:
    """Keys file, audit signing key and the approver identity settings every worker needs."""
    keys = root / "keys.json"
    root.mkdir(parents=True, exist_ok=True)
    keys.write_text(json.dumps({"pii-hmac-2026": secrets.token_urlsafe(48)}))
    return {"RESIDENCY_KEYS_FILE": str(keys), "RESIDENCY_AUDIT_SIGNING_KEY": signing_key,
            "RESIDENCY_ATTESTATION_KEY": signing_key,  # attests cleared records (issue 7)
            "RESIDENCY_JWKS": str(idp.jwks_path), "RESIDENCY_JWT_ISSUER": idp.issuer,
            "RESIDENCY_JWT_AUDIENCE": idp.audience}


# --- looking at a worker from the outside -------------------------------------------------------

def web_port(worker: WorkerProcess) -> int:
    return int(worker.command[worker.command.index("--web-port") + 1])


def http(worker: WorkerProcess, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of a GET on the worker's web port; (0, b"") when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port(worker)}{path}", timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def ready(worker: WorkerProcess) -> bool:
    return http(worker, "/health/ready")[0] == 200


def lags(worker: WorkerProcess) -> dict[tuple[str, int], int] | None:
    """``residency_consumer_lag`` per owned source partition; None when the worker does not answer."""
    status, body = http(worker, "/metrics")
    if status != 200:
        return None
    return {(topic, int(p)): int(float(v)) for p, topic, v in LAG.findall(body.decode())}


def rss_bytes(worker: WorkerProcess) -> int:
    """Resident memory of the worker and its children."""
    try:
        proc = psutil.Process(worker.proc.pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
    except psutil.Error:
        return 0


def source_partitions(loaded: LoadedPolicy) -> set[tuple[str, int]]:
    """Every partition the fleet consumes as a source (raw topics and the provenance topic)."""
    names = RegionTopics(loaded.policy.region)
    tps = {(names.raw(d), p) for d, spec in loaded.policy.datasets.items() for p in range(spec.partitions)}
    return tps | {(names.provenance, p) for p in range(loaded.policy.topology.audit_partitions)}


class EndOffsets:
    """End offsets of a set of topics through one long-lived consumer (cheap to poll every few ms)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.consumer: AIOKafkaConsumer | None = None
        self.tps: dict[str, list[TopicPartition]] = {}

    async def __aenter__(self) -> EndOffsets:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                         request_timeout_ms=10_000)
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def total(self, topics: Iterable[str]) -> int:
        tps = []
        for topic in topics:
            if topic not in self.tps:
                partitions = self.consumer.partitions_for_topic(topic)
                if partitions is None:
                    await self.consumer._client.force_metadata_update()  # noqa: SLF001 - no public call
                    partitions = self.consumer.partitions_for_topic(topic) or set()
                self.tps[topic] = [TopicPartition(topic, p) for p in sorted(partitions)]
            tps += self.tps[topic]
        return sum((await self.consumer.end_offsets(tps)).values())


# --- the invariant checks -----------------------------------------------------------------------

@dataclass
class Check:
    """What the outcome topics and the provenance say about a set of events."""

    events: int = 0
    missing: list[str] = field(default_factory=list)
    several: list[str] = field(default_factory=list)  # more than one kind of outcome
    duplicates: list[tuple[str, str, int]] = field(default_factory=list)  # (event id, outcome, copies)
    wrong: Counter = field(default_factory=Counter)  # (expected, got) for events with one outcome
    without_provenance: list[str] = field(default_factory=list)
    diagnosis: str = ""  # where the provenance of events without it stopped, when there are any

    @property
    def ok(self) -> bool:
        return not (self.missing or self.several or self.duplicates or self.wrong or self.without_provenance)

    def summary(self) -> str:
        return (f"{self.events} events: {len(self.missing)} lost, {len(self.duplicates)} duplicated, "
                f"{len(self.several)} with several outcomes, {sum(self.wrong.values())} with an unexpected "
                f"outcome {dict(self.wrong) if self.wrong else ''}, {len(self.without_provenance)} without "
                f"provenance; e.g. {(self.missing + [d[0] for d in self.duplicates] + self.without_provenance)[:3]}"
                + (f"; {self.diagnosis}" if self.diagnosis else ""))


def check_events(bootstrap: str, loaded: LoadedPolicy, events: list[GeneratedEvent] | dict[str, str],
                 timeout_s: float = 180) -> Check:
    """Every event id has exactly one outcome, once, the expected one, and a provenance entry.

    ``events``: generated events, or a mapping of event id to expected outcome ("*" for any).
    """
    expected = events if isinstance(events, dict) else {e.event_id: e.expected for e in events}
    ids = set(expected)
    outcomes = asyncio.run(collect(bootstrap, loaded.policy, ids, timeout_s=timeout_s))
    check = Check(events=len(ids))
    check.missing = sorted(ids - outcomes.outcome.keys())
    check.several = sorted(e for e in ids if len(outcomes.of(e)) > 1)
    # every outcome topic, also for event ids not in this run: nothing is ever written twice
    check.duplicates = sorted((e, o, n) for (e, o), n in outcomes.copies.items() if n > 1)
    check.wrong = Counter((want, next(iter(outcomes.of(e)))) for e, want in expected.items()
                          if len(outcomes.of(e)) == 1 and want != "*" and outcomes.of(e) != {want})
    changelog = RegionTopics(loaded.policy.region).changelog("provenance")

    def provenance_keys() -> set[str] | None:
        keys = {m.key.decode() for m in asyncio.run(read_topic(bootstrap, changelog))}
        return keys if keys >= ids else None

    try:
        wait_until(provenance_keys, min(timeout_s, 120), "a provenance entry for every event", interval=1.0)
    except Deadline:
        keys = {m.key.decode() for m in asyncio.run(read_topic(bootstrap, changelog))}
        check.without_provenance = sorted(ids - keys)
        check.diagnosis = asyncio.run(provenance_diagnosis(bootstrap, loaded, set(check.without_provenance)))
    return check


async def provenance_diagnosis(bootstrap: str, loaded: LoadedPolicy, without: set[str]) -> str:
    """Where the provenance of ``without`` stopped: on ``R.provenance`` or not, and whether the
    record agent's group committed past the records that carry it (folded, or skipped unseen)."""
    names = RegionTopics(loaded.policy.region)
    carriers: dict[int, list[int]] = {}
    for msg in await read_topic(bootstrap, names.provenance):
        try:
            ids = {f["event_id"] for f in fragments_of(msg.value)}
        except ValueError:
            continue
        if ids & without:
            carriers.setdefault(msg.partition, []).append(msg.offset)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=app_id(loaded.policy.region),
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(names.provenance, p) for p in range(loaded.policy.topology.audit_partitions)]
        ends = await consumer.end_offsets(tps)
        committed = {tp.partition: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()
    where = {p: (min(o), max(o), len(o)) for p, o in sorted(carriers.items())}
    return (f"records carrying them on {names.provenance} (partition: first, last, count) {where}; "
            f"the record agent's committed offsets {committed}, end offsets "
            f"{ {tp.partition: o for tp, o in ends.items()} }")


# --- producing while faults happen --------------------------------------------------------------

def mixed_events(count: int, seed: int) -> list[GeneratedEvent]:
    return list(generate(count, seed=seed))


async def produce_paced(bootstrap: str, region: str, events: list[GeneratedEvent], per_second: float) -> None:
    """Produce ``events`` in slices at about ``per_second``, so workers process a live stream."""
    step = max(1, int(per_second / 4))
    for start in range(0, len(events), step):
        began = time.monotonic()
        await produce(bootstrap, region, events[start:start + step])
        await asyncio.sleep(max(0.0, 0.25 - (time.monotonic() - began)))


# --- scenarios ----------------------------------------------------------------------------------

@dataclass
class Report:
    scenario: str
    seed: int
    events: int = 0
    kills: int = 0
    mid_batch_kills: int = 0
    check: Check | None = None
    lag_recovery_s: float | None = None
    max_lag: int = 0
    max_rss_mb: float = 0.0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        check = self.check.summary() if self.check else "not checked"
        lag = f", lag back to 0 in {self.lag_recovery_s:.1f}s after the kill" if self.lag_recovery_s is not None else ""
        return (f"{self.scenario} seed={self.seed}: {self.events} events, {self.kills} kills "
                f"({self.mid_batch_kills} mid-batch){lag}, max lag {self.max_lag}, max RSS {self.max_rss_mb:.0f} MB, "
                f"{self.seconds:.0f}s; {check}")


async def _kill_mid_batch(worker: WorkerProcess, offsets: EndOffsets, outcome_names: list[str],
                          provenance: str, timeout: float = 30.0) -> bool:
    """kill -9 while a batch is being sent: its outcome records are on the broker but not yet its
    provenance records (the screen stage sends outcomes, awaits them, then sends provenance).

    Outcomes that grew since provenance last grew belong to a batch whose provenance is not out yet.
    Returns whether the kill left the topics that way, read right after the kill (before any restart).
    """
    async def totals() -> tuple[int, int]:
        return await offsets.total(outcome_names), await offsets.total([provenance])

    outs_then, prov_then = await totals()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outs, prov = await totals()
        if prov != prov_then:
            outs_then, prov_then = outs, prov
        elif outs > outs_then:
            worker.kill()
            break
        await asyncio.sleep(0.002)
    else:
        worker.kill()
    outs, prov = await totals()
    return prov == prov_then and outs > outs_then


MID_BATCH_TRIES = 4


def crash(fleet: Fleet, events: int, seed: int, kills: int = 3, mid_batch: int = 1,
          timeout_s: float = 240) -> Report:
    """kill -9 the worker ``kills`` times at seeded random points (``mid_batch`` of them while a batch
    is being sent, tried again when one lands between batches, so ``report.kills`` can exceed
    ``kills``) while it drains ``events`` events; restart it each time with the same data dir."""
    rng = random.Random(seed)
    report = Report("crash", seed, events=events)
    began = time.monotonic()
    mix = mixed_events(events, seed)
    asyncio.run(produce(fleet.bootstrap, fleet.region, mix))
    mid_batch_at = set(rng.sample(range(kills), min(mid_batch, kills)))
    targets = sorted(rng.randint(events * k // (kills + 1) + 200, events * (k + 1) // (kills + 1)) for k in range(kills))
    say(f"crash seed={seed}: kill -9 after {targets} outcomes; mid-batch kills: {sorted(mid_batch_at)}")
    outcome_names = list(outcome_topics(fleet.loaded.policy))

    async def run() -> WorkerProcess:
        worker = fleet.worker("w0")
        async with EndOffsets(fleet.bootstrap) as offsets:
            for k, target in enumerate(targets):
                await screened(worker, offsets, target)
                if k in mid_batch_at:
                    worker = await mid_batch(worker, offsets, k)
                else:
                    worker.kill()
                    report.kills += 1
                    worker = fleet.worker("w0")
        return worker

    async def screened(worker: WorkerProcess, offsets: EndOffsets, target: int) -> None:
        """Wait until the outcome topics hold ``target`` records, noting the worker's peak RSS."""
        while await offsets.total(outcome_names) < target:
            if not worker.alive:
                raise AssertionError(f"the worker died by itself:\n{worker.log_tail()}")
            report.max_rss_mb = max(report.max_rss_mb, rss_bytes(worker) / 2**20)
            await asyncio.sleep(0.05)

    async def mid_batch(worker: WorkerProcess, offsets: EndOffsets, k: int) -> WorkerProcess:
        """The kill detector races the worker (a batch's provenance can go out between reading the
        offsets and the signal), so a kill that lands between batches is tried again, each time on a
        freshly restarted worker, up to ``MID_BATCH_TRIES`` kills in all."""
        for attempt in range(1, MID_BATCH_TRIES + 1):
            landed = await _kill_mid_batch(worker, offsets, outcome_names, fleet.names.provenance)
            report.kills += 1
            worker = fleet.worker("w0")
            if landed:
                report.mid_batch_kills += 1
                return worker
            report.notes.append(f"kill {k + 1} try {attempt} was meant mid-batch but landed between batches")
            resume_at = min(await offsets.total(outcome_names) + 200, events)
            if resume_at == events:
                break  # nothing left to screen (the targets leave a quarter of the events; not expected)
            await screened(worker, offsets, resume_at)  # back to screening the backlog
        return worker

    worker = asyncio.run(run())
    report.check = check_events(fleet.bootstrap, fleet.loaded, mix, timeout_s=timeout_s)
    assert worker.alive, worker.log_tail()
    report.seconds = time.monotonic() - began
    return report


def rebalance(fleet: Fleet, events: int, seed: int, per_second: float = 1500, lag_bound_s: float = 90,
              timeout_s: float = 240) -> Report:
    """Two workers: the second joins mid-stream, then the first is killed -9; the survivor finishes.

    Measures the time from the kill until the survivor owns every source partition with zero lag.
    """
    rng = random.Random(seed)
    report = Report("rebalance", seed, events=events)
    began = time.monotonic()
    mix = mixed_events(events, seed)
    join_at, kill_at = sorted(rng.sample(range(events // 5, events * 3 // 5), 2))
    say(f"rebalance seed={seed}: second worker joins after {join_at} outcomes, first killed after {kill_at}")
    outcome_names = list(outcome_topics(fleet.loaded.policy))
    everything = source_partitions(fleet.loaded)

    async def run() -> tuple[WorkerProcess, float]:
        first = fleet.worker("w1")
        producing = asyncio.ensure_future(produce_paced(fleet.bootstrap, fleet.region, mix, per_second))
        second = None
        async with EndOffsets(fleet.bootstrap) as offsets:
            while await offsets.total(outcome_names) < join_at:
                await asyncio.sleep(0.1)
            second = fleet.worker("w2")
            # the kill should find both workers owning partitions: wait until the second reports lag
            deadline = time.monotonic() + 90
            while not (lags(second) or {}) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            while await offsets.total(outcome_names) < kill_at:
                await asyncio.sleep(0.05)
            owned = sorted(lags(second) or {})
            report.notes.append(f"second worker owned {len(owned)} source partitions before the kill")
            first.kill()
            killed_at = time.monotonic()
            report.kills = 1
        await producing
        return second, killed_at

    second, killed_at = asyncio.run(run())

    last: dict[tuple[str, int], int] = {}

    def caught_up() -> bool:
        current = lags(second)
        if current is None:
            return False
        last.clear()
        last.update(current)
        report.max_lag = max(report.max_lag, sum(current.values()))
        report.max_rss_mb = max(report.max_rss_mb, rss_bytes(second) / 2**20)
        return set(current) >= everything and not any(current.values())

    try:
        wait_until(caught_up, lag_bound_s + 60, "the survivor to own every partition with zero lag", interval=0.5)
    except Deadline as exc:  # say which partitions lag, and by how much
        lagging = {f"{t}[{p}]": n for (t, p), n in sorted(last.items()) if n}
        missing = sorted(f"{t}[{p}]" for t, p in everything - set(last))
        raise Deadline(f"{exc}: lag {lagging or 'none'}; not owned {missing or 'none'}") from exc
    report.lag_recovery_s = time.monotonic() - killed_at
    report.check = check_events(fleet.bootstrap, fleet.loaded, mix, timeout_s=timeout_s)
    assert second.alive, second.log_tail()
    report.seconds = time.monotonic() - began
    return report
