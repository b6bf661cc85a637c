"""The ``residency`` command line. Each subcommand is a thin wrapper over a module function."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from pipeline.policy import PolicyError, load_policy


def _home() -> Path:
    return Path(os.environ.get("RESIDENCY_HOME", Path.home() / ".cache" / "residency"))


def _settings(args: argparse.Namespace):  # noqa: ANN202 - Settings, imported lazily for a fast CLI
    from pipeline.settings import Settings

    overrides = {k: v for k, v in {
        "policy": getattr(args, "policy", None),
        "bootstrap_servers": getattr(args, "bootstrap", None),
        "web_port": getattr(args, "web_port", None),
        "data_dir": getattr(args, "data_dir", None),
    }.items() if v is not None}
    return Settings(**overrides)


def cmd_policy_check(args: argparse.Namespace) -> int:
    loaded = load_policy(args.file)
    policy = loaded.policy
    print(f"{args.file}: OK")
    print(f"region: {policy.region}; datasets: {', '.join(sorted(policy.datasets))}")
    print(f"policy hash: {loaded.hash}")
    for name in policy.identity_off():
        print(f"WARNING: datasets.{name}.identity is off: records are cleared without checking who produced "
              f"them (trials only)", file=sys.stderr)
    for place in policy.unmapped_producer_groups():
        print(f"WARNING: {place} has no Kafka principals (kafka_principals.producer_groups); "
              f"`residency acls` refuses until it has", file=sys.stderr)
    for name, dataset in sorted(policy.datasets.items()):
        for profile, egress in sorted(dataset.egress.items()):
            print(f"egress: datasets.{name}.egress.{profile} -> region {egress.region}")
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from pipeline.admin import apply_topics, check_topics
    from pipeline.topics import topic_specs

    settings = _settings(args)
    loaded = load_policy(args.policy)
    specs = topic_specs(loaded.policy)
    if args.action == "check":
        problems = asyncio.run(check_topics(settings.bootstrap_servers, specs))
        for problem in problems:
            print(f"DRIFT {problem}", file=sys.stderr)
        print(f"{len(specs) - len(problems)}/{len(specs)} topics match the policy")
        return 1 if problems else 0
    report = asyncio.run(apply_topics(settings.bootstrap_servers, specs))
    for name in report.created:
        print(f"created {name}")
    print(f"{len(report.created)} created, {len(report.present)} already present, {len(specs)} in the policy")
    for problem in report.problems:
        print(f"DRIFT {problem}", file=sys.stderr)
    if report.problems:
        print("fix drift by hand (partition counts are never changed automatically)", file=sys.stderr)
    return 0 if report.ok else 1


def cmd_worker(args: argparse.Namespace) -> int:
    import logging

    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from pipeline.logs import configure_logging
    from pipeline.worker import run_worker

    try:
        settings = _settings(args)
    except (ValidationError, SettingsError) as exc:
        # A JSON line like every other worker line; the fields and what is wrong, never the values.
        configure_logging("info", "json")
        problems = str(exc) if isinstance(exc, SettingsError) else "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        logging.getLogger("pipeline.worker").error("refusing to start: invalid settings: %s", problems)
        return 2
    return run_worker(settings)


def cmd_broker(args: argparse.Namespace) -> int:
    from pipeline import broker

    args.home = args.home or _home() / "kafka"
    return {"start": broker.cmd_start, "stop": broker.cmd_stop, "status": broker.cmd_status}[args.action](args)


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    return run_demo(events=args.events, home=args.home or _home(), port=args.port, serve=args.serve)


def cmd_bench(args: argparse.Namespace) -> int:
    from pipeline.benchmark.main import run_bench

    return run_bench(bench_options(args), args.json, args.home or _home(), args.recovery)


def bench_options(args: argparse.Namespace):  # noqa: ANN201 - pipeline.benchmark.options.Options
    """The run's ``Options``: each flag given, ``Options``' own default for the rest."""
    from pipeline.benchmark.options import Options

    given = {"events": args.events, "latency_s": args.latency_seconds, "warmup_s": args.latency_warmup,
             "latency_rate": args.latency_rate, "workers": args.workers, "screen_processes": args.screen_processes,
             "stages": tuple(args.stages.split(",")) if args.stages else None, "rounds": args.rounds,
             "keep_topics": args.keep_topics or None}
    options = Options(**{name: value for name, value in given.items() if value is not None})
    if args.compare is not None:
        options.compare = None if args.compare == "none" else _shape(args.compare)
    return options


def _shape(text: str) -> tuple[int, int]:
    """``WORKERS,HELPERS`` of ``residency bench --compare``."""
    try:
        workers, helpers = (int(part) for part in text.split(","))
    except ValueError:
        raise SystemExit(f"--compare: expected WORKERS,HELPERS (e.g. 1,1) or none, got {text!r}") from None
    if not (1 <= workers <= 8 and 0 <= helpers <= 16):
        raise SystemExit("--compare: 1-8 workers and 0-16 helpers")
    return workers, helpers


def cmd_mask(args: argparse.Namespace) -> int:
    from pipeline.offline import mask_stream

    loaded = load_policy(args.policy)
    source = sys.stdin.buffer if args.input in (None, "-") else open(args.input, "rb")  # noqa: SIM115
    with source:
        return mask_stream(loaded, _settings(args).key_ring(), args.dataset, source, sys.stdout.buffer)


def cmd_trace(args: argparse.Namespace) -> int:
    from pipeline.trace import print_trace, trace_from_worker

    if args.url:  # ask a worker: its provenance table answers, routed to the owner of the event id
        return trace_from_worker(args.url, args.event_id)
    if args.policy is None:
        print("pass --url URL of a worker, or --policy FILE to read the provenance topic", file=sys.stderr)
        return 2
    settings = _settings(args)
    loaded = load_policy(args.policy)
    return asyncio.run(print_trace(settings.bootstrap_servers, loaded.policy, args.event_id))


def cmd_audit(args: argparse.Namespace) -> int:
    from pipeline import auditcli

    if args.action == "keygen":
        return auditcli.cmd_keygen(args.public_out)
    settings = _settings(args)
    since, until = auditcli.parse_time(args.since), auditcli.parse_time(args.until)
    if args.action == "verify" and args.bundle:
        keys = auditcli.trusted_keys(args.public_key, None) if args.public_key else None
        return auditcli.cmd_verify_bundle(args.bundle, keys)
    if args.policy is None:
        print("--policy FILE is needed to find the region's audit topics", file=sys.stderr)
        return 2
    region = load_policy(args.policy).policy.region
    keys = auditcli.trusted_keys(args.public_key, settings.audit_signing_key)
    if args.action == "verify":
        return auditcli.cmd_verify(settings.bootstrap_servers, region, keys, since, until)
    if args.out is None:
        print("--out DIR is needed for export", file=sys.stderr)
        return 2
    pems = [p.read_text() for p in args.public_key] or [
        auditcli.load_signing_key(settings.audit_signing_key).public_key_pem()]
    return auditcli.cmd_export(settings.bootstrap_servers, region, pems, args.out, since, until)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="residency", description="Data residency gateway for Kafka")
    sub = p.add_subparsers(dest="command", required=True)

    pc = sub.add_parser("policy", help="validate a policy file").add_subparsers(dest="action", required=True)
    check = pc.add_parser("check", help="validate and print the policy hash")
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_policy_check)

    t = sub.add_parser("topics", help="create or check every topic the policy implies")
    t.add_argument("action", choices=["apply", "check"])
    t.add_argument("--policy", type=Path, required=True)
    t.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    t.set_defaults(func=cmd_topics)

    w = sub.add_parser("worker", help="run one worker of the regional fleet")
    w.add_argument("--policy", type=Path)
    w.add_argument("--bootstrap")
    w.add_argument("--web-port", type=int)
    w.add_argument("--data-dir", type=Path)
    w.set_defaults(func=cmd_worker)

    b = sub.add_parser("broker", help="a local single-node Apache Kafka for development and tests")
    b.add_argument("action", choices=["start", "stop", "status"])
    b.add_argument("--home", type=Path, help="state directory (default: ~/.cache/residency/kafka)")
    b.add_argument("--port", type=int, default=9092)
    b.set_defaults(func=cmd_broker)

    d = sub.add_parser("demo", help="run the whole topology on a synthetic mix, then clean up")
    d.add_argument("--events", type=int, default=2000)
    d.add_argument("--home", type=Path)
    d.add_argument("--port", type=int, default=0, help="broker port (default: a free one)")
    d.add_argument("--serve", action="store_true", help="keep the worker and its approval console running")
    d.set_defaults(func=cmd_demo)

    bn = sub.add_parser("bench", help="throughput of raw aiokafka, Faust and the screening topology (docs/benchmarks.md)")
    # the defaults live in pipeline.benchmark.options.Options; None here means "its default"
    from pipeline.benchmark.options import Options

    defaults = Options()
    compare = ",".join(map(str, defaults.compare)) if defaults.compare else "none"
    bn.add_argument("--events", type=int, help=f"events per stage (default {defaults.events:,}, ~1 KB each)")
    bn.add_argument("--json", type=Path, help="write the report to this file")
    bn.add_argument("--stages", help="comma-separated subset of raw,faust,faust-tuned,screen (default: all)")
    bn.add_argument("--workers", type=int, choices=range(1, 9), metavar="N",
                    help=f"worker processes of the screening fleet (default {defaults.workers})")
    bn.add_argument("--screen-processes", type=int, choices=range(17), metavar="H",
                    help=f"screen helpers per worker of the screening fleet (default {defaults.screen_processes})")
    bn.add_argument("--rounds", type=int, choices=range(1, 10), metavar="R",
                    help=f"rounds of the Faust baselines and the screening fleet, each on fresh events; "
                         f"figures are the rounds' medians (default {defaults.rounds})")
    bn.add_argument("--compare", metavar="WORKERS,HELPERS",
                    help=f"also run this fleet shape on its own copy of the events, latency at the same rate "
                         f"(default {compare}; none: skip)")
    bn.add_argument("--latency-seconds", type=float,
                    help=f"length of the half-rate latency run (default {defaults.latency_s:g})")
    bn.add_argument("--latency-warmup", type=float, metavar="SECONDS",
                    help=f"seconds produced at the latency run's rate before it measures, reported apart "
                         f"(default {defaults.warmup_s:g})")
    bn.add_argument("--latency-rate", type=float, default=None,
                    help="events/s of the latency run instead of half the measured rate (to compare builds)")
    bn.add_argument("--recovery", type=int, default=0, metavar="ENTRIES",
                    help="also time rebuilding a provenance table of ENTRIES entries from its changelog")
    bn.add_argument("--home", type=Path, help="run directory parent (default: ~/.cache/residency)")
    bn.add_argument("--keep-topics", action="store_true",
                    help="on a broker given by KAFKA_BOOTSTRAP_SERVERS, keep the run's topics "
                         "(default: deleted when the run succeeds; a broker the run starts is removed whole)")
    bn.set_defaults(func=cmd_bench)

    m = sub.add_parser("mask", help="screen JSON Lines offline with exactly the agents' code")
    m.add_argument("--policy", type=Path, required=True)
    m.add_argument("--dataset", required=True)
    m.add_argument("input", nargs="?", default="-")
    m.set_defaults(func=cmd_mask)

    a = sub.add_parser("audit", help="verify or export the tamper-evident audit trail")
    a.add_argument("action", choices=["keygen", "verify", "export"])
    a.add_argument("--policy", type=Path)
    a.add_argument("--bootstrap")
    a.add_argument("--public-key", type=Path, action="append", default=[], help="trusted public key (PEM)")
    a.add_argument("--from", "--since", dest="since", help="start of the window (RFC 3339)")
    a.add_argument("--to", "--until", dest="until", help="end of the window (RFC 3339)")
    a.add_argument("--bundle", type=Path, help="verify an exported bundle offline (no broker)")
    a.add_argument("--out", type=Path, help="export: the bundle directory")
    a.add_argument("--public-out", type=Path, default=Path("audit-public.pem"), help="keygen: public key file")
    a.set_defaults(func=cmd_audit)

    tr = sub.add_parser("trace", help="the provenance of one event")
    tr.add_argument("event_id")
    tr.add_argument("--policy", type=Path, help="read the provenance topic of this policy's region")
    tr.add_argument("--url", default=os.environ.get("RESIDENCY_URL"),
                    help="a worker's web address (default RESIDENCY_URL); any worker answers")
    tr.add_argument("--bootstrap")
    tr.set_defaults(func=cmd_trace)

    from pipeline.heldcli import add_parsers as add_held_parsers

    add_held_parsers(sub)
    from pipeline.enforcecli import add_parsers as add_enforcement_parsers

    add_enforcement_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except PolicyError as exc:  # every command that reads a policy: the message names file and path
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
