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
