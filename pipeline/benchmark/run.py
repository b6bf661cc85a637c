"""``residency bench``: the baselines and the screening topology on one broker, over the same events.

Method (docs/benchmarks.md): N events are produced once to ``R.raw.payments`` and ``R.raw.tickets``.
Each stage then reads all of them with its own consumer group and is measured from its first output
record to its last (record timestamps), with its outputs counted from end offsets:
(a) raw aiokafka, (b) naive Faust, (c) tuned Faust, each copying to a sink topic of its own;
(d) a fleet of real ``residency worker`` processes with the example policy (one worker with one
screen helper unless ``Options`` says otherwise): the clock runs from its first outcome record to its
last outcome, provenance-changelog or audit record, once every event has an outcome, a provenance
table entry and an audit entry. Then, with the same fleet, events are produced at half of (d)'s rate
and ingress-to-cleared latency is read from record timestamps. Last, another fleet shape
(``Options.compare``) screens its own copy of the events in a second region, and its latency is
measured at the rate of (d)'s latency run.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.admin import apply_topics
from pipeline.benchmark.events import bench_events
from pipeline.benchmark.fleet import Passthrough, WorkerEnv, region_policy
from pipeline.benchmark.measure import (CpuMeter, DirtyWatch, Offsets, PeakRss, Window, by_second,
                                        listening_pid, loop_lag_buckets, loop_lag_summary, wait_for_count)
from pipeline.benchmark.options import Options
from pipeline.harness import outcome_topics, produce
from pipeline.policy import LoadedPolicy
from pipeline.topics import RegionTopics, TopicSpec, topic_specs

Say = Callable[[str], None]
PASSTHROUGHS = {"raw": "raw_eps", "faust": "faust_eps", "faust-tuned": "faust_tuned_eps"}


@dataclass
class Run:
    """One benchmark run: broker, run directory, region and its policy, shared offset reader."""

    bootstrap: str
    run_dir: Path
    loaded: LoadedPolicy
    offsets: Offsets
    say: Say
    options: Options
    env: WorkerEnv = field(init=False)

    def __post_init__(self) -> None:
        self.env = WorkerEnv(self.run_dir)

    @property
    def names(self) -> RegionTopics:
        return RegionTopics(self.loaded.policy.region)

    @property
    def raw_topics(self) -> list[str]:
        return [self.names.raw(d) for d in sorted(self.loaded.policy.datasets)]


async def provision(bootstrap: str, loaded: LoadedPolicy, sinks: list[str]) -> None:
    specs = topic_specs(loaded.policy) + [TopicSpec(s, 3, loaded.policy.topology.replication_factor) for s in sinks]
    report = await apply_topics(bootstrap, specs)
    if not report.ok:
        raise RuntimeError("; ".join(report.problems))


async def produce_events(run: Run, region: str, count: int) -> float:
    """Produce the run's events to ``region``'s raw topics; return their average value size (bytes)."""
    sizes = [0, 0]
    last = [time.monotonic()]

    def sized():  # noqa: ANN202
        for event in bench_events(count, run.options.seed):
            sizes[0] += len(event.value)
            sizes[1] += 1
            yield event

    def progress(done: int, _total: int) -> None:
        if time.monotonic() - last[0] >= 5 or done == count:
            last[0] = time.monotonic()
            run.say(f"produced {done:,}/{count:,} events to {region}.raw.*")

    await produce(run.bootstrap, region, sized(), progress)
    return sizes[0] / max(1, sizes[1])


def sink_of(region: str, mode: str, round_: int = 1) -> str:
    """The topic a baseline copies to in one round (each round reads every event again)."""
    return f"{region}.bench.{mode}" + (f".r{round_}" if round_ > 1 else "")


async def passthrough_stage(run: Run, mode: str, round_: int = 1) -> tuple[Window, float, dict[str, int]]:
    sink = sink_of(run.names.region, mode, round_)
    name = mode if round_ == 1 else f"{mode}-r{round_}"
    proc = Passthrough(mode, run.bootstrap, run.raw_topics, sink, run.run_dir, name).start()
    try:
        with PeakRss(proc.proc.pid) as rss:
            cpu = CpuMeter(proc.proc.pid, listening_pid(run.bootstrap))
            await wait_for_count(run.offsets, [sink], 1, f"{mode} first output", run.options.stage_timeout_s,
                                 lambda _: None, lambda: proc.alive)
            cpu.start()
            await wait_for_count(run.offsets, [sink], run.options.events, mode, run.options.stage_timeout_s,
                                 run.say, lambda: proc.alive)
            cpu.stop()
        window = await run.offsets.window([sink])
    finally:
        proc.stop()
    cpu_us = cpu.us_per_event(run.options.events)
    run.say(f"{name}: {window.eps:,.0f} events/s over {(window.last_ms - window.first_ms) / 1000:.1f}s, "
            f"peak RSS {rss.peak_mb:.0f} MB, CPU us/event {cpu_us}")
    return window, rss.peak_mb, cpu_us


async def wait_topology(run: Run, loaded: LoadedPolicy, target: int, label: str, alive: Callable[[], bool],
                        since: dict[TopicPartition, int] | None = None) -> None:
    """Until ``target`` events have an outcome, a provenance table write and an audit entry."""
    names = RegionTopics(loaded.policy.region)
    outcomes = list(outcome_topics(loaded.policy))
    timeout = run.options.stage_timeout_s
    await wait_for_count(run.offsets, outcomes, target, f"{label} outcomes", timeout, run.say, alive, since)
    await wait_for_count(run.offsets, [names.changelog("provenance")], target, f"{label} provenance", timeout,
                         run.say, alive, since)
    deadline = time.monotonic() + timeout
    while True:  # R.audit holds fragments and checkpoints; every checkpoint is copied to R.audit.checkpoints
        entries = (await run.offsets.count([names.audit], since)
                   - await run.offsets.count([names.audit_checkpoints], since))
        if entries >= target:
            break
        if not alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{label} audit: {entries:,}/{target:,} entries")
        await asyncio.sleep(0.25)
    run.say(f"{label}: every event has an outcome, a provenance entry and an audit entry")


def topology_window(run: Run, loaded: LoadedPolicy):  # noqa: ANN201 - coroutine of Window
    names = RegionTopics(loaded.policy.region)
    return run.offsets.window(list(outcome_topics(loaded.policy)),
                              last_topics=[names.audit, names.changelog("provenance")])


def _fleet(run: Run, loaded: LoadedPolicy, workers: int, helpers: int, label: str) -> list:
    env = {"RESIDENCY_SCREEN_PROCESSES": str(helpers)}
    return [run.env.worker(loaded, run.bootstrap, f"{label}-{i}", env).start() for i in range(workers)]


def shape(workers: int, helpers: int) -> str:
    return (f"{workers} worker{'s' if workers > 1 else ''}, "
            f"{helpers or 'no'} screen helper{'' if helpers == 1 else 's'}{' each' if workers > 1 and helpers else ''}")


async def _throughput(run: Run, loaded: LoadedPolicy, fleet: list, label: str) -> dict[str, object]:
    """Wait until every event of ``loaded``'s raw topics is through ``fleet``; its rates and CPU."""
    alive = lambda: all(w.alive for w in fleet)  # noqa: E731
    outcomes = list(outcome_topics(loaded.policy))
    await wait_for_count(run.offsets, outcomes, 1, f"{label} first outcome", run.options.stage_timeout_s,
                         lambda _: None, alive)
    broker_pid = listening_pid(run.bootstrap)
    cpu = CpuMeter([w.proc.pid for w in fleet], broker_pid)
    cpu.start()  # CPU per event holds on a busy box; events/s does not
    await wait_topology(run, loaded, run.options.events, label, alive)
    cpu.stop()
    cpu_us = cpu.us_per_event(run.options.events)
    written = cpu.written_per_event(run.options.events)
    window = await topology_window(run, loaded)
    to_outcomes = await run.offsets.window(outcomes)
    run.say(f"{label}: {window.eps:,.0f} events/s end to end ({to_outcomes.eps:,.0f}/s to outcomes); CPU us per "
            f"event: workers {cpu_us.get('process', 0):,}, their helpers and verifiers {cpu_us.get('children', 0):,}, "
            f"broker {cpu_us.get('broker', 0):,}; bytes written to disk per event: "
            + (", ".join(f"{name} {n:,}" for name, n in written.items()) or "not known here"))
    return {"window": window, "outcomes_eps": to_outcomes.eps, "cpu_us_per_event": cpu_us.get("process", 0),
            "cpu": cpu_us, "write_bytes_per_event": written}


async def screen_stage(run: Run, loaded: LoadedPolicy | None = None, label: str = "screen",
                       latency_rate: Callable[[float], float] | None = None) -> dict[str, object]:
    """(d): the fleet of ``Options.workers`` workers through the events of ``loaded``'s raw topics
    (the run's by default); then, when ``latency_rate`` is given, the latency run at the rate it
    returns for the measured events/s."""
    options, loaded = run.options, loaded or run.loaded
    run.say(f"{label}: {shape(options.workers, options.screen_processes)}")
    fleet = _fleet(run, loaded, options.workers, options.screen_processes, label)
    latency: dict[str, object] = {}
    loop_lag: dict[str, object] = {}
    try:
        with contextlib.ExitStack() as stack:
            rss = [stack.enter_context(PeakRss(w.proc.pid)) for w in fleet]
            measured = await _throughput(run, loaded, fleet, label)
            run.say(f"{label}: RSS so far {' / '.join(f'{r.peak_mb:.0f}' for r in rss)} MB")
            if latency_rate is not None:
                lag_before = await _loop_lag(fleet)
                rate = options.latency_rate or latency_rate(measured["window"].eps)
                latency = await latency_stage(run, rate, lambda: all(w.alive for w in fleet), loaded,
                                              "half the median measured rate", fleet)
                loop_lag = loop_lag_summary(lag_before, await _loop_lag(fleet))
                if loop_lag:
                    run.say(f"latency: the workers' event loops were held > 100 ms "
                            f"{loop_lag['loop_lag_over_100ms']} and > 250 ms {loop_lag['loop_lag_over_250ms']} "
                            f"times in {loop_lag['loop_lag_wakeups']:,} wake-ups of their 100 ms timers")
    finally:
        for w in fleet:
            w.stop()
    peaks = [r.peak_mb for r in rss]
    run.say(f"{label} worker peak RSS {' / '.join(f'{p:.0f}' for p in peaks)} MB (each with its children)")
    return {**measured, "rss_mb": max(peaks), "rss_mb_each": peaks, "loop_lag": loop_lag, **latency}


def region_topics(names: Iterable[str], region: str) -> list[str]:
    """The topics of ``names`` that belong to the run's ``region``: its own (``<region>.*``, Faust's
    changelogs included, as the app id is ``<region>.residency``) and its copies' (``<region>-<suffix>.*``)."""
    copy = re.compile(re.escape(region) + r"-[A-Za-z0-9]+\.")
    return sorted(n for n in names if n.startswith(f"{region}.") or copy.match(n))


async def drop_region_topics(bootstrap: str, region: str) -> int:
    """Delete every topic of the run's ``region`` (and its copies) from the broker; how many."""
    if not region:
        raise ValueError("no region to drop")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        doomed = region_topics(await admin.list_topics(), region)
        if doomed:
            await admin.delete_topics(doomed)
        return len(doomed)
    finally:
        await admin.close()


async def copy_region(run: Run, suffix: str) -> LoadedPolicy:
    """A second region of the run's policy (``<region>-<suffix>``), its topics, and a copy of the
    run's events on its raw topics: another fleet screens them from the start."""
    loaded = region_policy(run.run_dir, f"{run.loaded.policy.region}-{suffix}")
    await provision(run.bootstrap, loaded, [])
    await produce_events(run, loaded.policy.region, run.options.events)
    return loaded


async def _loop_lag(fleet: list) -> dict[float, float]:
    """The fleet's event-loop lag histograms added up (cumulative buckets add)."""
    total: dict[float, float] = {}
    for w in fleet:
        for bound, count in (await asyncio.to_thread(loop_lag_buckets, w.web_port)).items():
            total[bound] = total.get(bound, 0.0) + count
    return total


async def latency_stage(run: Run, rate: float, alive: Callable[[], bool], loaded: LoadedPolicy | None = None,
                        why: str = "half the measured rate", fleet: Sequence[Any] = ()) -> dict[str, object]:
    """Produce at ``rate`` for ``warmup_s + latency_s`` to ``loaded``'s raw topics (the run's by
    default); ingress-to-cleared from record timestamps, over the events after the warm-up (and,
    reported beside it, over all of them). With the ``fleet``'s processes, also how busy the
    machine and each part of it were while the measured events were produced (the load generator
    is this process, and shares the machine with what it measures)."""
    loaded = loaded or run.loaded
    warm = int(rate * run.options.warmup_s)
    count = max(100, int(rate * run.options.latency_s))
    tag = f"lat{secrets.token_hex(3)}"
    events = list(bench_events(warm + count, run.options.seed + 1))
    for e in events:
        e.event_id = f"{tag}-{e.event_id}"
        e.headers = [("event-id", e.event_id.encode())]
    warming = {e.event_id for e in events[:warm]}
    outcomes = list(outcome_topics(loaded.policy))
    since = await run.offsets.ends(outcomes)
    run.say(f"latency: producing {warm + count:,} events at {rate:,.0f}/s"
            f"{'' if run.options.latency_rate else f' ({why})'}, "
            f"the first {run.options.warmup_s:g} s as a warm-up")
    meter = CpuMeter([w.proc.pid for w in fleet], listening_pid(run.bootstrap), own=True) if fleet else None
    metering = asyncio.get_running_loop().call_later(run.options.warmup_s, meter.start) if meter else None
    try:
        with DirtyWatch() as dirty:
            sent = await _produce_at(run.bootstrap, RegionTopics(loaded.policy.region), events, rate)
    finally:
        if metering is not None:
            metering.cancel()
    busy = _busy(run, meter)
    await wait_for_count(run.offsets, outcomes, warm + count, "latency outcomes", run.options.stage_timeout_s,
                         run.say, alive, since)
    cleared = [t for t, kind in outcome_topics(loaded.policy).items() if kind == "cleared"]
    found = [(eid, msg.timestamp - sent[eid]) for msg in await _read_since(run.bootstrap, since, cleared)
             if (eid := dict(msg.headers or ()).get("event-id", b"").decode()) in sent]
    latencies = sorted(ms for eid, ms in found if eid not in warming)
    everything = sorted(ms for _, ms in found)
    if not latencies:
        raise RuntimeError("latency: no cleared record of the latency events found")
    p50, p99 = _quantile(latencies, 0.5), _quantile(latencies, 0.99)
    run.say(f"latency: ingress->cleared p50 {p50} ms, p99 {p99} ms over {len(latencies):,} cleared events "
            f"(with the warm-up: p99 {_quantile(everything, 0.99)} ms)")
    seconds = by_second((sent[eid], ms) for eid, ms in found)
    run.say("latency by second since the first send (median/max ms): "
            + " ".join(f"{row['p50_ms']}/{row['max_ms']}" for row in seconds))
    if dirty.peak_mb:
        run.say(f"latency: data waiting for writeback (Dirty) peaked at {dirty.peak_mb:,.0f} MB; writeback bursts at "
                + (", ".join(f"{b['s']:g} s ({b['mb']} MB)" for b in dirty.bursts) or "none")
                + " since the first send (a burst can stall the broker's writes: docs/operations.md, Sizing)")
    return {"p50_ms": p50, "p99_ms": p99, "latency_rate_eps": round(rate), "latency_events": count, **busy,
            "latency_cleared": len(latencies), "latency_max_ms": latencies[-1],
            "latency_warmup_s": run.options.warmup_s, "p99_ms_with_warmup": _quantile(everything, 0.99),
            "latency_by_second": seconds, "latency_dirty_peak_mb": dirty.peak_mb,
            "latency_writeback_bursts": dirty.bursts}


def _busy(run: Run, meter: CpuMeter | None) -> dict[str, object]:
    """``latency_cpu_pct``: CPU of the fleet, the broker, this process (the load generator) and the
    whole machine while the measured events were produced, in % of one core; said as a line."""
    if meter is None or not meter.started:  # the production ended before the warm-up did
        return {}
    meter.stop()
    pct = meter.percent_of_a_core()
    run.say(f"latency: CPU while producing the measured events, % of one core: workers {pct.get('process', 0)}, "
            f"their helpers and verifiers {pct.get('children', 0)}, broker {pct.get('broker', 0)}, this process "
            f"(the load generator) {pct.get('bench', 0)}; the machine {pct['machine']} of {100 * pct['cores']}")
    return {"latency_cpu_pct": pct}


def _quantile(ordered: list[int], q: float) -> int:
    """The nearest-rank value below ``q`` of an ascending list (p50 of 1..4 is 2)."""
    return ordered[int(q * (len(ordered) - 1))]


TICK_S = 0.005  # the latency producer hands the client what is due every 5 ms (Kafka 4's default linger.ms)
FLUSH_TIMEOUT_S = 60.0


def load_generator_problem() -> str | None:
    """Why the latency run cannot produce (None: it can): its load generator is an optional extra."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return ("the latency run's load generator needs confluent-kafka: pip install -e '.[bench]' "
                "(make installs it)")
    return None


async def _produce_at(bootstrap: str, names: RegionTopics, events: list, rate: float) -> dict[str, int]:
    """Send ``events`` at ``rate`` per second, each stamped when it is handed to the client.

    The load generator shares the machine with what it measures, so it must be cheap. It is
    librdkafka (``confluent-kafka``), as Kafka's own clients would be: every ``TICK_S`` the events
    due by then are handed to it, and it batches them per partition for up to the same 5 ms
    (``linger.ms``, Kafka 4's default), keyed ones to the partition Kafka's default partitioner picks
    (``murmur2_random``). At 1,782 records/s it cost this process 12% of a core where aiokafka's
    producer cost 29% (measured on the same broker), CPU the worker and the broker get back on 2 cores.
    """
    problem = load_generator_problem()
    if problem:
        raise RuntimeError(problem)
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": int(TICK_S * 1000), "partitioner": "murmur2_random",
                         "client.id": "residency-bench-load"})
    failed: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(err.name())  # the error's name only: never the record

    sent: dict[str, int] = {}
    topics = [names.raw(event.dataset) for event in events]
    # The load generator must not stall: full collections over this process's events (tens of
    # thousands of objects) paused it for 50-100 ms (measured), so records stamped before a pause left
    # after it and the ones after it went out in a burst. What exists now is exempt until the end.
    gc.freeze()
    try:
        start, i = time.monotonic(), 0
        while i < len(events):
            due = min(len(events), int((time.monotonic() - start) * rate) + 1)
            now_ms = int(time.time() * 1000)
            for k in range(i, due):
                event = events[k]
                producer.produce(topics[k], event.value, event.key, headers=event.headers, timestamp=now_ms,
                                 on_delivery=delivered)
                sent[event.event_id] = now_ms
            i = max(i, due)
            producer.poll(0)  # delivery reports
            if i < len(events):
                await asyncio.sleep(max(TICK_S, start + i / rate - time.monotonic()))
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        while len(producer) and time.monotonic() < deadline:
            producer.poll(0)
            await asyncio.sleep(TICK_S)
    finally:
        gc.unfreeze()
    if len(producer) or failed:
        raise RuntimeError(f"latency: {len(producer)} events never acknowledged, {len(failed)} failed "
                           f"({', '.join(sorted(set(failed))) or 'timed out'})")
    return sent


async def _read_since(bootstrap: str, since: dict[TopicPartition, int], topics: list[str]) -> list:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = [tp for tp in since if tp.topic in topics]
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, since[tp])
        out, pending = [], {tp for tp in tps if ends[tp] > since[tp]}
        while pending:
            for tp, records in (await consumer.getmany(*pending, timeout_ms=500)).items():
                out.extend(records)
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return out
    finally:
        await consumer.stop()


async def compare_stage(run: Run, workers: int, helpers: int, latency_rate: float) -> dict[str, object]:
    """Another fleet shape through the same events, copied to a second region's topics; then its
    latency at ``latency_rate`` (the rate of (d)'s latency run, so the two compare)."""
    loaded = await copy_region(run, "cmp")
    run.say(f"compare: {shape(workers, helpers)}")
    fleet = _fleet(run, loaded, workers, helpers, "compare")
    try:
        with contextlib.ExitStack() as stack:
            rss = [stack.enter_context(PeakRss(w.proc.pid)) for w in fleet]
            measured = await _throughput(run, loaded, fleet, "compare")
            latency = await latency_stage(run, latency_rate, lambda: all(w.alive for w in fleet), loaded,
                                          "the rate of the screen stage's latency run", fleet)
    finally:
        for w in fleet:
            w.stop()
    return {**measured, **latency, "rss_mb": max(r.peak_mb for r in rss)}
