"""Soak: run the crash and rebalance fault scenarios over and over for a given time, then summarise.

    python bench/soak.py --minutes 30 --seed 7 [--events 20000] [--bootstrap HOST:PORT]

Each round gets its own region (fresh topics) and seed (``seed + round``), so a failing round is
replayed with ``--seed <its seed> --minutes 0``. Without ``--bootstrap`` a local Apache Kafka is started
for the run and stopped at the end. Prints one line per round and a summary (events, kills, lost,
duplicates, max lag, lag recovery, RSS); exits 1 if any round lost or duplicated an event.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.audit import generate_signing_key  # noqa: E402
from pipeline.broker import LocalKafka, free_ports  # noqa: E402
from pipeline.identity import LocalIssuer  # noqa: E402
from tests.faults.scenarios import Fleet, crash, fleet_env, fresh_region, rebalance, write_policy  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="keep starting rounds until this much time passed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--events", type=int, default=20_000, help="events per crash round")
    parser.add_argument("--rebalance-events", type=int, default=8_000)
    parser.add_argument("--kills", type=int, default=3, help="kill -9 per crash round (one of them mid-batch)")
    parser.add_argument("--bootstrap", help="an existing broker; default: start a local one")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="residency-soak-"))
    kafka = None
    if args.bootstrap is None:
        port, controller = free_ports(2)
        kafka = LocalKafka(root / "kafka", port=port, controller_port=controller)
        kafka.start(die_with_parent=True)
    bootstrap = args.bootstrap or kafka.bootstrap
    env = fleet_env(root / "env", generate_signing_key(), LocalIssuer.create(root / "idp"))
    reports, began, round_no = [], time.monotonic(), 0
    try:
        while round_no == 0 or time.monotonic() - began < args.minutes * 60:
            seed = args.seed + round_no
            for name in ("crash", "rebalance"):
                fleet = Fleet(bootstrap, write_policy(root / f"r{round_no}-{name}", fresh_region(f"soak{name[:3]}")),
                              root / f"r{round_no}-{name}", env)
                fleet.provision()
                try:
                    if name == "crash":
                        report = crash(fleet, args.events, seed, kills=args.kills, mid_batch=1)
                    else:
                        report = rebalance(fleet, args.rebalance_events, seed)
                except AssertionError as exc:  # a deadline or a dead worker: report it, keep soaking
                    print(f"round {round_no} {name} seed={seed}: FAILED: {exc}", flush=True)
                    reports.append(None)
                    continue
                finally:
                    fleet.stop_all()
                reports.append(report)
                print(f"round {round_no}: {report.line()}", flush=True)
            round_no += 1
    finally:
        if kafka is not None:
            kafka.stop()
    done = [r for r in reports if r is not None]
    lost = sum(len(r.check.missing) for r in done)
    dupes = sum(len(r.check.duplicates) for r in done)
    recoveries = [r.lag_recovery_s for r in done if r.lag_recovery_s is not None]
    print(f"soak: {round_no} rounds in {(time.monotonic() - began) / 60:.1f} min, seeds {args.seed}..{args.seed + round_no - 1}; "
          f"{sum(r.events for r in done)} events, {sum(r.kills for r in done)} kills "
          f"({sum(r.mid_batch_kills for r in done)} mid-batch), {lost} lost, {dupes} duplicate event ids, "
          f"{sum(not r.check.ok for r in done)} rounds with a failed check, {reports.count(None)} rounds failed; "
          f"max lag {max((r.max_lag for r in done), default=0)}, lag recovery max {max(recoveries, default=0):.1f}s, "
          f"max RSS {max((r.max_rss_mb for r in done), default=0):.0f} MB")
    return 0 if done and all(r.check.ok for r in done) and None not in reports else 1


if __name__ == "__main__":
    sys.exit(main())
