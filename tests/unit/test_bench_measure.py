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
