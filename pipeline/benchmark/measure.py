"""What the benchmark reads: output counts from end offsets, first and last output times from record
timestamps, a process's peak RSS, the machine and the versions."""

from __future__ import annotations

import asyncio
import os
import platform
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Self

import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Window:
    """Outputs between two end-offset snapshots, and their first and last record timestamps (ms)."""

    count: int
    first_ms: int
    last_ms: int

    @property
    def eps(self) -> float:
        return self.count / max(1e-3, (self.last_ms - self.first_ms) / 1000)


class Offsets:
    """One consumer, kept open, that answers end offsets and reads single records by offset."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                         fetch_max_wait_ms=50)

    async def __aenter__(self) -> Offsets:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        tps = []
        for topic in topics:
            found = self.consumer.partitions_for_topic(topic)
            if found is None:
                await self.consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public call
                found = self.consumer.partitions_for_topic(topic) or set()
            tps += [TopicPartition(topic, p) for p in sorted(found)]
        return tps

    async def ends(self, topics: Iterable[str]) -> dict[TopicPartition, int]:
        tps = await self.partitions(topics)
        return dict(await self.consumer.end_offsets(tps)) if tps else {}

    async def count(self, topics: Iterable[str], since: dict[TopicPartition, int] | None = None) -> int:
        ends = await self.ends(topics)
        return sum(end - (since or {}).get(tp, 0) for tp, end in ends.items())

    async def timestamps(self, wanted: list[tuple[TopicPartition, int]]) -> list[int]:
        """The timestamp of the record at each (partition, offset). A reader of its own: a consumer
        with assigned partitions only keeps metadata of their topics, and counting needs them all."""
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None)
        await reader.start()
        try:
            out = []
            for tp, offset in wanted:
                reader.assign([tp])
                reader.seek(tp, offset)
                while not (records := (await reader.getmany(tp, timeout_ms=1000, max_records=1)).get(tp)):
                    pass
                out.append(records[0].timestamp)
            return out
        finally:
            await reader.stop()

    async def window(self, topics: Iterable[str], since: dict[TopicPartition, int] | None = None,
                     last_topics: Iterable[str] | None = None) -> Window:
        """Outputs of ``topics`` after ``since``: count, first timestamp; last timestamp over
        ``last_topics`` too (the stage is done when its last output of any kind is written)."""
        since = since or {}
        ends = await self.ends(topics)
        firsts = await self.timestamps([(tp, since.get(tp, 0)) for tp, end in ends.items() if end > since.get(tp, 0)])
        if last_topics is not None:
            ends = {**ends, **await self.ends(last_topics)}
        lasts = await self.timestamps([(tp, end - 1) for tp, end in ends.items() if end > since.get(tp, 0)])
        count = await self.count(topics, since)
        return Window(count, min(firsts), max(lasts))


async def wait_for_count(offsets: Offsets, topics: list[str], target: int, label: str, timeout_s: float,
                         say: Callable[[str], None], alive: Callable[[], bool] = lambda: True,
                         since: dict[TopicPartition, int] | None = None, every_s: float = 5.0) -> int:
    """Poll end offsets until ``topics`` hold ``target`` new records; progress every ``every_s``."""
    deadline = time.monotonic() + timeout_s
    shown = time.monotonic()
    while True:
        done = await offsets.count(topics, since)
        if done >= target:
            say(f"{label}: {done:,}/{target:,}")
            return done
        if not alive():
            raise RuntimeError(f"{label}: the process under test exited at {done:,}/{target:,}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{label}: {done:,}/{target:,} after {timeout_s:.0f}s")
        if time.monotonic() - shown >= every_s:
            shown = time.monotonic()
            say(f"{label}: {done:,}/{target:,}")
        await asyncio.sleep(0.25)


class _Sampler:
    """A thread that reads something every ``interval`` seconds (``_run``, until ``_stop`` is set)
    from ``__enter__`` to ``__exit__``."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class PeakRss(_Sampler):
    """Samples the resident set size of a process and its children (the worker's audit verifier runs
    in one) every ``interval`` seconds in a thread; ``peak_mb``."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        super().__init__(interval)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.process.memory_info().rss
            except psutil.Error:
                return
            for child in self.process.children(recursive=True):
                try:
                    rss += child.memory_info().rss
                except psutil.Error:
                    pass  # it ended between the listing and the reading
            self.peak = max(self.peak, rss)
            self._stop.wait(self.interval)

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)


PAGE_CACHE_SETTINGS = ("dirty_expire_centisecs", "dirty_writeback_centisecs", "dirty_background_ratio",
                       "dirty_ratio", "dirty_background_bytes", "dirty_bytes")


def page_cache() -> dict[str, int]:
    """The kernel's page-cache writeback settings (Linux ``/proc/sys/vm``). With the default 30 s
    expiry, written data goes to disk in bursts of up to ~250 MB during the latency run, and the
    seconds around each read up to a second of latency (docs/benchmarks.md, session 15)."""
    out = {}
    for name in PAGE_CACHE_SETTINGS:
        try:
            with open(f"/proc/sys/vm/{name}") as setting:
                out[name] = int(setting.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return out


def dirty_mb() -> float | None:
    """Data written but not yet on disk, machine-wide (``Dirty`` in ``/proc/meminfo``), in MB."""
    try:
        with open("/proc/meminfo") as meminfo:
            line = next((line for line in meminfo if line.startswith("Dirty:")), None)
    except OSError:
        return None
    return None if line is None else round(int(line.split()[1]) / 1024, 1)


WRITEBACK_DROP_MB = 40.0  # Dirty falling this much within one sample is a writeback burst


class DirtyWatch(_Sampler):
    """Samples ``Dirty`` every ``interval`` seconds in a thread: its peak, and the seconds (since
    ``__enter__``) at which it fell ``WRITEBACK_DROP_MB`` or more below its last high (a writeback
    burst, which lasts while it keeps falling) with the MB it fell."""

    def __init__(self, interval: float = 0.25) -> None:
        self.peak_mb = 0.0
        self.bursts: list[dict[str, float]] = []
        super().__init__(interval)

    def _run(self) -> None:
        began, high = time.monotonic(), dirty_mb()
        last, burst = high, None
        while high is not None and not self._stop.wait(self.interval):
            now = dirty_mb()
            if now is None:
                return
            self.peak_mb = max(self.peak_mb, now)
            if burst is not None and now < last:  # still falling: the same burst
                burst["mb"] += round(last - now)
            else:
                burst = None
                if high - now >= WRITEBACK_DROP_MB:
                    burst = {"s": round(time.monotonic() - began, 1), "mb": round(high - now)}
                    self.bursts.append(burst)
            high = now if burst is not None else max(high, now)
            last = now


def machine_cpu() -> float:
    """CPU seconds the whole machine was busy so far, all CPUs (not idle or waiting for I/O; it
    includes the kernel's work, such as loopback networking, that no process is charged for)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def listening_pid(bootstrap: str) -> int | None:
    """The local process listening on the first bootstrap server's port (the broker), if any."""
    try:
        port = int(bootstrap.split(",")[0].rsplit(":", 1)[1])
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return conn.pid
    except (ValueError, IndexError, psutil.Error):
        pass
    return None


_WRITTEN_GROUP = {"process": "workers", "children": "workers", "broker": "broker"}  # CpuMeter.written's groups


class CpuMeter:
    """CPU seconds, and bytes written to storage, from ``start`` to ``stop`` of the workers
    (``process``), of their child processes (``children``: screen helpers and audit verifiers) and
    of the broker when it runs here, each process read once per reading.

    Bytes are ``/proc/PID/io`` ``write_bytes``: counted when a page is dirtied, before writeback,
    i.e. what the page cache later writes back; none where the system does not tell. Counted per
    process: one that starts in between counts from zero; one that ends in between counts up to
    its last reading (none: what a child that ends in between used is missed)."""

    def __init__(self, pids: int | list[int], broker_pid: int | None, own: bool = False) -> None:
        self.workers = [pids] if isinstance(pids, int) else list(pids)
        self.broker_pid = broker_pid
        self.own = own  # also this process (``bench``: the latency run's load generator)
        self._since: tuple[float, float] | None = None  # at start: the machine's busy CPU seconds, monotonic time
        self.machine_busy = 0.0  # CPU seconds the whole machine was busy from start to stop
        self.seconds = 0.0  # wall-clock seconds from start to stop
        # group -> pid -> (CPU seconds, bytes written or None) at start, and at the last reading
        self._start: dict[str, dict[int, tuple[float, int | None]]] = {}
        self._last: dict[str, dict[int, tuple[float, int | None]]] = {}
        self.used: dict[str, float] = {}
        self.written: dict[str, int] = {}  # ``workers`` (process and children) and ``broker``

    @staticmethod
    def _read(process: psutil.Process) -> tuple[float, int | None]:
        times = process.cpu_times()
        try:
            written = process.io_counters().write_bytes
        except (psutil.AccessDenied, AttributeError):  # no I/O accounting here
            written = None
        return times.user + times.system, written

    def _now(self) -> dict[str, dict[int, tuple[float, int | None]]]:
        out: dict[str, dict[int, tuple[float, int | None]]] = {"process": {}, "children": {}, "broker": {}}
        for pid in self.workers:
            try:
                worker = psutil.Process(pid)
                out["process"][pid] = self._read(worker)
                children = worker.children(recursive=True)
            except psutil.Error:
                continue  # it ended: its last reading stands
            for child in children:
                try:
                    out["children"][child.pid] = self._read(child)
                except psutil.Error:
                    pass  # it ended between the listing and the reading
        for name, pid in (("broker", self.broker_pid), ("bench", os.getpid() if self.own else None)):
            if pid is not None:
                try:
                    out.setdefault(name, {})[pid] = self._read(psutil.Process(pid))
                except psutil.Error:
                    pass
        return out

    def sample(self) -> None:
        """Read every process now (a child that ends before ``stop`` keeps this reading)."""
        for name, readings in self._now().items():
            self._last.setdefault(name, {}).update(readings)

    def start(self) -> None:
        self._start = self._now()
        self._last = {name: dict(readings) for name, readings in self._start.items()}
        self._since = machine_cpu(), time.monotonic()

    def stop(self) -> None:
        self.sample()
        self.used, self.written = {}, {}
        for name, readings in self._last.items():
            if not readings:
                continue
            start, group = self._start.get(name, {}), _WRITTEN_GROUP.get(name)
            self.used[name] = 0.0
            for pid, (cpu, written) in readings.items():
                cpu_before, written_before = start.get(pid, (0.0, None))
                self.used[name] += cpu - cpu_before
                if group is not None and written is not None:
                    self.written[group] = self.written.get(group, 0) + written - (written_before or 0)
        if self._since is not None:
            busy, began = self._since
            self.machine_busy, self.seconds = machine_cpu() - busy, time.monotonic() - began

    @property
    def started(self) -> bool:
        return self._since is not None

    def percent_of_a_core(self) -> dict[str, int]:
        """Each group's CPU from start to stop as a percentage of one core, and ``machine``: every
        process and the kernel together (``cores`` x 100 is all of it)."""
        if self.seconds <= 0:
            return {}
        shares = {name: round(100 * seconds / self.seconds) for name, seconds in self.used.items()}
        return {**shares, "machine": round(100 * self.machine_busy / self.seconds), "cores": psutil.cpu_count() or 1}

    def us_per_event(self, events: int) -> dict[str, int]:
        return {name: round(1e6 * seconds / events) for name, seconds in self.used.items()}

    def written_per_event(self, events: int) -> dict[str, int]:
        """Bytes written to storage per event: ``workers`` (with their children) and ``broker``."""
        return {name: round(n / events) for name, n in self.written.items()} if events else {}


PROBE_ITERATIONS = 200_000


def host_probe(passes: int = 3) -> list[float]:
    """Per CPU this process may use, the milliseconds of CPU time a fixed pure-Python loop takes
    there, the best of ``passes`` (~0.1 s per CPU in all).

    Each vCPU of the development machine runs at one of two speeds about 2x apart, changing on its
    own every few seconds to minutes (this loop pinned to one vCPU took ~11 ms, seconds later ~20;
    the other vCPU meanwhile either), and a stage's events/s moves with them. Taken just before
    each stage, while nothing of the bench runs, it says at which speeds the stage started."""
    cpus = sorted(os.sched_getaffinity(0))
    out = []
    try:
        for cpu in cpus:
            os.sched_setaffinity(0, {cpu})  # this thread only
            best = float("inf")
            for _ in range(passes):
                started = time.process_time()
                total = 0
                for i in range(PROBE_ITERATIONS):
                    total += i * i
                best = min(best, time.process_time() - started)
            out.append(round(best * 1000, 1))
    finally:
        os.sched_setaffinity(0, set(cpus))
    return out


DISK_NEARLY_FULL_PCT = 90  # above this the run's figures are suspect (see disk_warning)


def machine(home: str | os.PathLike[str]) -> dict[str, object]:
    """The box: cores, memory, CPU model, load average, and how full the run directory's disk is."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    except OSError:
        pass
    return {"cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "cpu_model": model, "load_average_at_start": [round(x, 2) for x in os.getloadavg()], **disk(home),
            "page_cache": page_cache()}


def disk(home: str | os.PathLike[str]) -> dict[str, object]:
    """Used percentage and free GB of the file system holding ``home`` (the broker's log and the
    workers' RocksDB directories when the bench starts its own broker)."""
    usage = psutil.disk_usage(os.fspath(home))
    return {"disk_used_pct": round(usage.percent, 1), "disk_free_gb": round(usage.free / 2**30, 1)}


def disk_warning(info: dict[str, object]) -> str | None:
    """A warning when the disk is nearly full: on the development box at 94% used, ingress-to-cleared
    p99 at 1,200 events/s read 198-1,024 ms; after freeing space, 242-315 ms (docs/benchmarks.md,
    session 13)."""
    used = info.get("disk_used_pct")
    if isinstance(used, float | int) and used >= DISK_NEARLY_FULL_PCT:
        return (f"warning: the disk holding the run directory is {used:.0f}% full ({info.get('disk_free_gb')} GB free); "
                f"writes can stall the broker and the workers, and the latency figures with them")
    return None


def writeback_note(info: dict[str, object]) -> str | None:
    """What the host's page-cache expiry means for the latency run, when it is Linux's default or
    longer (a shorter one is the operator's choice and needs no word)."""
    expiry = (info.get("page_cache") or {}).get("dirty_expire_centisecs")  # type: ignore[union-attr]
    if isinstance(expiry, int) and expiry >= 3000:
        return (f"note: this host writes data back to disk {expiry / 100:g} s after it is written "
                f"(vm.dirty_expire_centisecs={expiry}), in bursts; a burst during the latency run can stall the "
                f"broker's writes and show as a slow second (the run reports each burst; docs/operations.md, Sizing)")
    return None


def versions(kafka: str) -> dict[str, str]:
    return {"python": platform.python_version(), "faust": metadata.version("faust-streaming"),
            "aiokafka": metadata.version("aiokafka"), "kafka": kafka}


def loop_lag_buckets(web_port: int) -> dict[float, float]:
    """A worker's ``residency_event_loop_lag_seconds`` histogram: observations per upper bound
    (cumulative, as Prometheus exposes them)."""
    url = f"http://127.0.0.1:{web_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback, our own worker
        text = response.read().decode()
    return {float(sample.labels["le"]): sample.value for family in text_string_to_metric_families(text)
            if family.name == "residency_event_loop_lag_seconds"
            for sample in family.samples if sample.name.endswith("_bucket")}


def loop_lag_summary(before: dict[float, float], after: dict[float, float]) -> dict[str, object]:
    """How often the worker's event loop was held between two snapshots: wake-ups of its 100 ms
    timer, those late by more than 100 and 250 ms, and the bucket bound under which 99% fall."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = counts.get(float("inf"), 0.0)
    if not total:
        return {}
    p99 = next(bound for bound, n in counts.items() if n >= 0.99 * total)
    return {"loop_lag_wakeups": int(total), "loop_lag_over_100ms": int(total - counts[0.1]),
            "loop_lag_over_250ms": int(total - counts[0.25]),
            "loop_lag_p99_ms_under": None if p99 == float("inf") else round(p99 * 1000)}


def by_second(samples: Iterable[tuple[int, int]]) -> list[dict[str, int]]:
    """``(sent_ms, latency_ms)`` samples as one row per second since the first send: how many, their
    median and their maximum. p99 alone hides whether a tail is one stall or waves all along."""
    rows: dict[int, list[int]] = {}
    samples = sorted(samples)
    if not samples:
        return []
    start = samples[0][0]
    for sent_ms, latency_ms in samples:
        rows.setdefault((sent_ms - start) // 1000, []).append(latency_ms)
    out = []
    for second in sorted(rows):
        values = sorted(rows[second])
        out.append({"s": second, "n": len(values), "p50_ms": values[(len(values) - 1) // 2], "max_ms": values[-1]})
    return out
