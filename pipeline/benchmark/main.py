"""``residency bench``: start (or use) a broker, run the stages of :mod:`pipeline.benchmark.run`, write
the JSON report, and stop everything the run started, on success, failure and Ctrl-C alike."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import tempfile
import time
from pathlib import Path

import orjson

from pipeline import broker
from pipeline.benchmark import run as stages
from pipeline.benchmark.fleet import region_policy
from pipeline.benchmark.measure import Offsets, machine, versions


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_bench(options: stages.Options, json_path: Path | None, home: Path, recovery_entries: int = 0) -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    home.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="bench-", dir=home))
    started = time.monotonic()
    info = {"machine": machine()}
    choice = None
    ok = False
    try:
        port, controller = broker.free_ports(2)
        choice = broker.resolve_bootstrap(os.environ, run_dir / "kafka", port=port, controller_port=controller,
                                          report=say)
        say(f"broker: {choice.kind} at {choice.bootstrap}; run directory {run_dir}")
        # A broker this run started is empty: the example policy runs as it is. On a shared broker the
        # region gets a unique name so no earlier topic or consumer group can take part.
        region = "eu" if choice.started_here else f"bench{secrets.token_hex(3)}"
        result = asyncio.run(_measure(choice.bootstrap, run_dir, region, options, recovery_entries))
        result.update(info)
        result["versions"] = versions(broker.DEFAULT_VERSION if choice.kind == "local" else f"{choice.kind} broker")
        result["duration_s"] = round(time.monotonic() - started, 1)
        text = orjson.dumps(result, option=orjson.OPT_INDENT_2)
        print(text.decode(), flush=True)
        if json_path is not None:
            json_path.write_bytes(text + b"\n")
            say(f"wrote {json_path}")
        ok = True
        return 0
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
        return 130
    finally:
        if choice is not None:
            choice.stop()
            say("broker stopped" if choice.started_here else "broker left running (not ours)")
        if ok:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            say(f"logs kept in {run_dir}")
        say(f"total {time.monotonic() - started:.0f}s")


async def _measure(bootstrap: str, run_dir: Path, region: str, options: stages.Options,
                   recovery_entries: int) -> dict[str, object]:
    loaded = region_policy(run_dir, region)
    sinks = [f"{region}.bench.{mode}" for mode in stages.PASSTHROUGHS]
    await stages.provision(bootstrap, loaded, sinks)
    async with Offsets(bootstrap) as offsets:
        run = stages.Run(bootstrap, run_dir, loaded, offsets, say, options)
        result: dict[str, object] = {"events": options.events}
        result["event_bytes_avg"] = round(await stages.produce_events(run, region, options.events))
        rss: dict[str, float] = {}
        cpu: dict[str, dict[str, int]] = {}  # CPU us per event of each stage's process and of the broker
        for mode, key in stages.PASSTHROUGHS.items():
            if mode in options.stages:
                window, rss[mode], cpu[mode] = await stages.passthrough_stage(run, mode)
                result[key] = round(window.eps)
        if "screen" in options.stages:
            screen = await stages.screen_stage(run)
            result["screen_eps"] = round(screen["window"].eps)
            for mode, key in stages.PASSTHROUGHS.items():
                if key in result:
                    ratio_key = {"raw": "screen_over_raw", "faust": "screen_over_faust",
                                 "faust-tuned": "screen_over_tuned"}[mode]
                    result[ratio_key] = round(screen["window"].eps / result[key], 3)
            result.update({k: screen[k] for k in ("p50_ms", "p99_ms", "rss_mb")})
            result["fleet"] = {"workers": options.workers, "screen_processes": options.screen_processes,
                               "rss_mb_each": screen["rss_mb_each"]}
            result["screen_outcomes_eps"] = round(screen["outcomes_eps"])
            result["screen_cpu_us_per_event"] = screen["cpu_us_per_event"]
            cpu["screen"] = screen["cpu"]
            result["latency"] = {k: screen[k] for k in
                                 ("latency_rate_eps", "latency_events", "latency_cleared", "latency_max_ms",
                                  "latency_warmup_s", "p99_ms_with_warmup", "latency_by_second")}
            result["latency"].update(screen["loop_lag"])
        result["passthrough_rss_mb"] = rss
        result["cpu_us_per_event"] = cpu
        if "screen" in options.stages and options.compare is not None:
            workers, helpers = options.compare
            other = await stages.compare_stage(run, workers, helpers, screen["latency_rate_eps"])
            result["compare"] = {
                "workers": workers, "screen_processes": helpers, "screen_eps": round(other["window"].eps),
                "screen_outcomes_eps": round(other["outcomes_eps"]), "rss_mb": other["rss_mb"],
                "cpu_us_per_event": other["cpu"], "latency_rate_eps": other["latency_rate_eps"],
                "p50_ms": other["p50_ms"], "p99_ms": other["p99_ms"],
                **{f"screen_over_{k}": round(other["window"].eps / result[v], 3)
                   for k, v in (("raw", "raw_eps"), ("faust", "faust_eps"), ("tuned", "faust_tuned_eps"))
                   if v in result}}
        if recovery_entries:
            from pipeline.benchmark.recovery import recovery_stage

            result["recovery"] = await recovery_stage(run, recovery_entries)
    return result


def default_home() -> Path:
    return Path(os.environ.get("RESIDENCY_HOME", Path.home() / ".cache" / "residency"))
