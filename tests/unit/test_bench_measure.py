"""Unit tests for what ``residency bench`` derives from its samples (pipeline/benchmark/measure.py)."""

from __future__ import annotations

from pipeline.benchmark.measure import by_second, disk_warning, machine


def test_by_second_groups_samples_by_the_second_they_were_sent_in() -> None:
    samples = [(10_500, 40), (10_000, 30), (10_999, 300), (11_000, 50), (13_200, 20), (13_900, 25)]

    rows = by_second(samples)

    assert rows == [
        {"s": 0, "n": 3, "p50_ms": 40, "max_ms": 300},
        {"s": 1, "n": 1, "p50_ms": 50, "max_ms": 50},
        {"s": 3, "n": 2, "p50_ms": 20, "max_ms": 25},  # a second without sends has no row
    ]


def test_by_second_of_nothing_is_empty() -> None:
    assert by_second([]) == []


def test_cpu_meter_counts_the_workers_children_apart_from_the_workers() -> None:
    """A worker's screen helpers and audit verifier are its children: their CPU is counted (as
    ``children``), or a fleet with helpers looks cheaper per event than it is."""
    import subprocess
    import sys
    import time

    from pipeline.benchmark.measure import CpuMeter

    # a "worker" that idles while its child burns ~1 s of CPU
    spin = "import time\nend = time.process_time() + 1.0\nwhile time.process_time() < end: pass\ntime.sleep(30)"
    worker = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys, time\n"
                               f"subprocess.Popen([sys.executable, '-c', {spin!r}])\ntime.sleep(30)"])
    try:
        meter = CpuMeter([worker.pid], None)
        meter.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            meter.stop()
            if meter.used.get("children", 0.0) >= 0.5:
                break
            time.sleep(0.1)
        assert meter.used.get("children", 0.0) >= 0.5, meter.used
        assert meter.used["process"] < 0.5, meter.used
    finally:
        import psutil

        for child in psutil.Process(worker.pid).children(recursive=True):
            child.kill()
        worker.kill()
        worker.wait()


def test_machine_reports_how_full_the_run_directory_disk_is(tmp_path) -> None:  # noqa: ANN001
    info = machine(tmp_path)
    assert 0 <= info["disk_used_pct"] <= 100
    assert info["disk_free_gb"] >= 0


def test_a_nearly_full_disk_is_warned_about_and_a_roomy_one_is_not() -> None:
    warning = disk_warning({"disk_used_pct": 94.0, "disk_free_gb": 6.1})
    assert warning is not None and "94% full" in warning and "6.1 GB free" in warning
    assert disk_warning({"disk_used_pct": 19.0, "disk_free_gb": 75.0}) is None
    assert disk_warning({}) is None


def test_cpu_meter_shows_its_own_process_and_the_whole_machine_as_shares_of_a_core() -> None:
    """The latency run's load generator is the bench process itself, on the machine it measures:
    its CPU and the machine's (kernel included) are reported beside the fleet's."""
    import time

    import psutil

    from pipeline.benchmark.measure import CpuMeter

    meter = CpuMeter([], None, own=True)
    assert not meter.started
    meter.start()
    end = time.process_time() + 0.3
    while time.process_time() < end:  # this process burns ~0.3 s of CPU
        pass
    meter.stop()

    pct = meter.percent_of_a_core()
    assert meter.used["bench"] >= 0.25, meter.used
    assert pct["bench"] > 0 and pct["cores"] == psutil.cpu_count()
    # the machine was busy at least while this process was (clock ticks: 10 ms of slack)
    assert meter.machine_busy >= meter.used["bench"] - 0.02, (meter.machine_busy, meter.used)
    assert pct["machine"] <= 100 * pct["cores"] + 5


def test_a_meter_never_started_reports_no_shares() -> None:
    from pipeline.benchmark.measure import CpuMeter

    meter = CpuMeter([], None, own=True)
    meter.stop()
    assert not meter.started and meter.percent_of_a_core() == {}


def test_the_meter_counts_what_a_workers_child_writes_and_nothing_before_start(tmp_path) -> None:  # noqa: ANN001
    """RocksDB writes from the worker, and its children write too: bytes per event of the fleet
    include them. What was written before ``start`` is not counted."""
    import subprocess
    import sys
    import time

    from pipeline.benchmark.measure import CpuMeter

    go, done = tmp_path / "go", tmp_path / "done"
    write = (f"import os, pathlib, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.02)\n"
             f"pathlib.Path({str(tmp_path / 'out')!r}).write_bytes(b'x' * (8 << 20))\n"
             f"pathlib.Path({str(done)!r}).touch()\ntime.sleep(30)")
    before = f"import pathlib\npathlib.Path({str(tmp_path / 'before')!r}).write_bytes(b'y' * (4 << 20))\n"
    worker = subprocess.Popen([sys.executable, "-c", f"{before}import subprocess, sys, time\n"
                               f"subprocess.Popen([sys.executable, '-c', {write!r}])\ntime.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "before").exists() or not _children(worker.pid):
            assert time.monotonic() < deadline, "the worker never started its child"
            time.sleep(0.05)
        writes = CpuMeter([worker.pid], None)
        writes.start()
        go.touch()
        while not done.exists():
            assert time.monotonic() < deadline, "the child never wrote its file"
            time.sleep(0.05)
        writes.stop()
    finally:
        worker.kill()
        worker.wait()
    assert 8 << 20 <= writes.written["workers"] < 11 << 20
    assert writes.written_per_event(1024) == {"workers": round(writes.written["workers"] / 1024)}


def _children(pid: int) -> list:
    import psutil

    return psutil.Process(pid).children()


def test_the_machine_report_holds_the_page_cache_writeback_settings(tmp_path) -> None:  # noqa: ANN001
    expiry = int(open("/proc/sys/vm/dirty_expire_centisecs").read())

    settings = machine(tmp_path)["page_cache"]

    assert settings["dirty_expire_centisecs"] == expiry
    assert {"dirty_writeback_centisecs", "dirty_background_ratio", "dirty_ratio"} <= settings.keys()


def test_dirty_watch_reports_the_peak_and_each_burst_once(monkeypatch) -> None:  # noqa: ANN001
    """A burst seen over several samples is one burst; a slow fall under the threshold is none."""
    import time

    from pipeline.benchmark import measure

    readings = iter([100, 150, 210, 120, 30, 30, 40, 70, 60, 50, 45, 90, 40] + [40] * 10_000)
    monkeypatch.setattr(measure, "dirty_mb", lambda: float(next(readings)))

    with measure.DirtyWatch(interval=0.001) as watch:
        deadline = time.monotonic() + 10
        while len(watch.bursts) < 2:
            assert time.monotonic() < deadline, f"bursts seen: {watch.bursts}"
            time.sleep(0.01)

    assert watch.peak_mb == 210
    assert [b["mb"] for b in watch.bursts] == [180, 50]


def test_a_default_writeback_expiry_is_noted_and_a_short_one_is_not() -> None:
    from pipeline.benchmark.measure import writeback_note

    note = writeback_note({"page_cache": {"dirty_expire_centisecs": 3000}})

    assert note is not None and "30 s" in note and "vm.dirty_expire_centisecs=3000" in note
    assert writeback_note({"page_cache": {"dirty_expire_centisecs": 300}}) is None
    assert writeback_note({"page_cache": {}}) is None  # not Linux: nothing to say
