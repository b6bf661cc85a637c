"""``screen()`` throughput on the generator's realistic events, and ``scan()`` cost per string type.

One core, no broker: events are generated up front, then screened in a loop under the example policy.
Run: ``python bench/screen_bench.py [--events N] [--rounds R] [--profile]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.detection import Budget, scan  # noqa: E402
from pipeline.generator import generate  # noqa: E402
from pipeline.keys import KeyRing  # noqa: E402
from pipeline.plan import compile_plans  # noqa: E402
from pipeline.policy import load_policy  # noqa: E402
from pipeline.screen import screen  # noqa: E402
from schemas.decision import RawRecord  # noqa: E402

POLICY = ROOT / "pipeline" / "examples" / "eu-policy.yaml"
BENCH_KEY = b"benchmark-only-secret-not-for-production-0123456789"

# Strings as they occur in the generator's events, one of each kind.
STRINGS = [
    "EUR", "retail", "Berlin", "Double charge", "pay-00000003", "2026-11-05T10:22:00Z", "SKU-12345", "10/31",
    "Customer asked to refund to card 4111111111111111 and confirm by mail",
    "hmac:pii-hmac-2026:00ce109c2562390737fb408fececce47169c9a8ea7b1003e3479053120b16ba0",
    "Hello, my card 4111 1111 1111 1111 was charged twice. Please refund to DE89370400440532013000 or "
    "write to lea.berg12@example.com. Order SKU-12345 from 2026-11-05. Thanks!",
]


def records(count: int) -> list[tuple[RawRecord, str]]:
    out = []
    for event in generate(count):
        record = RawRecord(f"eu.raw.{event.dataset}", 0, 0, event.key, event.value, tuple(event.headers))
        out.append((record, event.dataset))
    return out


def screen_rate(count: int, rounds: int) -> tuple[float, float]:
    """Best and median events/s of ``screen`` over ``count`` generated events."""
    plans = compile_plans(load_policy(POLICY), KeyRing({"pii-hmac-2026": BENCH_KEY}))
    batch = records(count)
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for record, dataset in batch:
            screen(record, plans[dataset])
        rates.append(count / (time.perf_counter() - start))
    return max(rates), statistics.median(rates)


def per_string(repeat: int = 2000) -> list[tuple[str, float]]:
    """Best-of-five microseconds per ``scan`` of each sample string."""
    out = []
    for text in STRINGS:
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(repeat):
                scan(text, Budget())
            best = min(best, (time.perf_counter() - start) / repeat)
        out.append((text, best * 1e6))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one screening round")
    args = parser.parse_args()

    print("scan() per string (best of 5, one core):")
    for text, micros in per_string():
        shown = text if len(text) <= 60 else text[:57] + "..."
        print(f"  {micros:8.1f} us  {shown!r}")
    best, median = screen_rate(args.events, args.rounds)
    print(f"screen() over {args.events:,} generated events: best {best:,.0f} events/s, median {median:,.0f} events/s")
    if args.profile:
        import cProfile
        import pstats

        plans = compile_plans(load_policy(POLICY), KeyRing({"pii-hmac-2026": BENCH_KEY}))
        batch = records(args.events)
        profiler = cProfile.Profile()
        profiler.enable()
        for record, dataset in batch:
            screen(record, plans[dataset])
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
