"""What a ``residency bench`` run measures, and its defaults (the CLI's help reads them from here, so
this module imports nothing heavy)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Options:
    events: int = 200_000
    latency_s: float = 20.0
    # the latency run's first seconds, produced at the same rate but not in p50/p99: the worker is
    # still finishing the throughput stage then (its audit verifier checks the backlog's entries),
    # and the broker's JIT compiles the new request mix: its C2 compiler thread took 0.3-0.5 core
    # for the first 15-25 s of the run, on a broker started minutes before (docs/benchmarks.md,
    # session 7); a production broker has long finished that
    warmup_s: float = 20.0
    latency_rate: float | None = None  # events/s of the latency run; None: half the measured rate
    # The screening fleet of stage (d): worker processes, and screen helpers per worker.
    workers: int = 1
    screen_processes: int = 1
    # Also run this other fleet shape (workers, helpers) on its own copy of the events, its latency
    # at the same rate as (d)'s; None: not run (the default since session 10: with three rounds a
    # run takes ~6 min, and the comparison ~1.5 min more). On 2 cores two workers without helpers
    # moved more events/s than one worker with a helper under a backlog, but at half their own peak
    # the box was saturated and p99 was 354-576 ms (docs/benchmarks.md, sessions 9 and 10).
    compare: tuple[int, int] | None = None
    stages: tuple[str, ...] = ("raw", "faust", "faust-tuned", "screen")
    # Rounds of (b), (c) and (d), one after another; the figures are medians, each ratio the median
    # of the rounds' own ratios. On the shared 2-core machine the same single-core loop ran at two
    # speeds 2x apart for stretches of seconds to minutes (docs/benchmarks.md, session 10), so one
    # stage could run slow and the next fast: a ratio from a single pass moved by +-25%.
    rounds: int = 3
    seed: int = 7
    stage_timeout_s: float = 900.0
    # On a broker the run did not start (KAFKA_BOOTSTRAP_SERVERS), delete the run's own topics at the
    # end: each run's region is unique, and topics left behind pile up (on a warm broker holding ~30
    # runs' topics the screen stage moved 2,465-3,000 events/s, afresh 4,018-4,598, the host's own
    # drift not separated; docs/benchmarks.md, session 18).
    keep_topics: bool = False
