"""``residency bench``: start (or use) a broker, run the stages of :mod:`pipeline.benchmark.run`, write
the JSON report, and stop everything the run started, on success, failure and Ctrl-C alike."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from pipeline import broker, interrupts
from pipeline.benchmark import run as stages
from pipeline.benchmark.fleet import region_policy
from pipeline.benchmark.measure import Offsets, disk_warning, host_probe, machine, versions, writeback_note


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _stage_say(message: str) -> None:
    """The stages' progress: also where an interrupt lost on its way in is raised again."""
    interrupts.check()
    say(message)


def run_bench(options: stages.Options, json_path: Path | None, home: Path, recovery_entries: int = 0) -> int:
    interrupts.install()
    if "screen" in options.stages and (problem := stages.load_generator_problem()):
        say(problem)  # before minutes of baselines, not after them
        return 2
    home.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="bench-", dir=home))
    started = time.monotonic()
    info = {"machine": machine(home)}
    if warning := disk_warning(info["machine"]):
        say(warning)
    if note := writeback_note(info["machine"]):
        say(note)
    choice = None
    region = ""
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
        for note in speed_notes(result.get("rounds", [])):
            say(note)
        if json_path is not None:
            json_path.write_bytes(text + b"\n")
            say(f"wrote {json_path}")
        ok = True
        return 0
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
        return 130
    finally:
        if choice is not None and not choice.started_here and region:
            if ok and not options.keep_topics:
                _drop_topics(choice.bootstrap, region)
            else:  # a failed run's topics are evidence, like its logs
                say(f"the run's topics ({region}.* and {region}-*) are kept on the broker")
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
    rounds = max(1, options.rounds)
    sinks = [stages.sink_of(region, mode, r) for mode in stages.PASSTHROUGHS for r in range(1, rounds + 1)]
    await stages.provision(bootstrap, loaded, sinks)
    async with Offsets(bootstrap) as offsets:
        run = stages.Run(bootstrap, run_dir, loaded, offsets, _stage_say, options)
        result: dict[str, object] = {"events": options.events}
        result["event_bytes_avg"] = round(await stages.produce_events(run, region, options.events))
        rss: dict[str, float] = {}
        cpu: dict[str, dict[str, int]] = {}  # CPU us per event of each stage's process and of the broker
        if "raw" in options.stages:  # far from every target, and 2 s long: once
            window, rss["raw"], cpu["raw"] = await stages.passthrough_stage(run, "raw")
            result["raw_eps"] = round(window.eps)
        per_round: list[dict[str, Any]] = []
        screen: dict[str, object] = {}
        for r in range(1, rounds + 1):
            if rounds > 1:
                say(f"round {r} of {rounds}")
            figures: dict[str, Any] = {}
            for mode in ("faust", "faust-tuned"):
                if mode in options.stages:
                    figures[f"probe_{PROBES[mode]}_ms"] = _probe(mode)
                    window, peak, mode_cpu = await stages.passthrough_stage(run, mode, r)
                    figures[stages.PASSTHROUGHS[mode]] = window.eps
                    rss[mode] = max(rss.get(mode, 0.0), peak)
                    cpu.setdefault(mode, mode_cpu)
            if "screen" in options.stages:
                last = r == rounds
                earlier = [f["screen_eps"] for f in per_round]
                figures["probe_screen_ms"] = _probe("screen")
                screen = await stages.screen_stage(
                    run, loaded if r == 1 else await stages.copy_region(run, f"r{r}"),
                    "screen" if rounds == 1 else f"screen-r{r}",
                    (lambda eps, earlier=earlier: statistics.median([*earlier, eps]) / 2) if last else None)
                figures["screen_eps"] = screen["window"].eps
                figures["screen_outcomes_eps"] = screen["outcomes_eps"]
                figures["rss_mb"] = screen["rss_mb"]
                cpu.setdefault("screen", screen["cpu"])
            per_round.append(figures)
        result.update(summarize_rounds(per_round, result.get("raw_eps")))
        if "screen" in options.stages:
            result.update({k: screen[k] for k in ("p50_ms", "p99_ms")})
            result["fleet"] = {"workers": options.workers, "screen_processes": options.screen_processes,
                               "rss_mb_each": screen["rss_mb_each"]}
            result["screen_cpu_us_per_event"] = cpu["screen"].get("process", 0)
            result["latency"] = {k: screen[k] for k in
                                 ("latency_rate_eps", "latency_events", "latency_cleared", "latency_max_ms",
                                  "latency_warmup_s", "p99_ms_with_warmup", "latency_by_second")}
            result["latency"].update(screen["loop_lag"])
            if "latency_cpu_pct" in screen:
                result["latency"]["latency_cpu_pct"] = screen["latency_cpu_pct"]
        if rounds > 1:
            say("rounds: " + "; ".join(", ".join(f"{k} {v:,}" for k, v in f.items()
                                                 if k != "rss_mb" and not k.startswith("probe_"))
                                       for f in result["rounds"]))
        result["passthrough_rss_mb"] = rss
        result["cpu_us_per_event"] = cpu
        if "screen" in options.stages and options.compare is not None:
            workers, helpers = options.compare
            other = await stages.compare_stage(run, workers, helpers, screen["latency_rate_eps"])
            result["compare"] = {
                "workers": workers, "screen_processes": helpers, "screen_eps": round(other["window"].eps),
                "screen_outcomes_eps": round(other["outcomes_eps"]), "rss_mb": other["rss_mb"],
                "cpu_us_per_event": other["cpu"], "latency_rate_eps": other["latency_rate_eps"],
                "p50_ms": other["p50_ms"], "p99_ms": other["p99_ms"], "latency_cpu_pct": other.get("latency_cpu_pct"),
                **{f"screen_over_{k}": round(other["window"].eps / result[v], 3)
                   for k, v in (("raw", "raw_eps"), ("faust", "faust_eps"), ("tuned", "faust_tuned_eps"))
                   if v in result}}
        if recovery_entries:
            from pipeline.benchmark.recovery import recovery_stage

            result["recovery"] = await recovery_stage(run, recovery_entries)
    return result


PROBES = {"faust": "faust", "faust-tuned": "tuned"}


def _drop_topics(bootstrap: str, region: str) -> None:
    """Delete the run's topics from a broker it did not start; say what was deleted or why not."""
    try:
        dropped = asyncio.run(stages.drop_region_topics(bootstrap, region))
    except Exception as exc:  # noqa: BLE001 - the report is written; say what is left behind
        say(f"the run's topics ({region}.* and {region}-*) were not deleted ({type(exc).__name__}); "
            f"delete them by hand or they stay on the broker")
        return
    say(f"deleted the run's {dropped} topics ({region}.* and {region}-*; --keep-topics keeps them)")


def _probe(stage: str) -> list[float]:
    probe = host_probe()
    say(f"host probe before {stage}: {' / '.join(map(str, probe))} ms per CPU (a fixed loop; "
        "see docs/benchmarks.md, Method)")
    return probe


RATIOS = {"faust_eps": "screen_over_faust", "faust_tuned_eps": "screen_over_tuned"}


def summarize_rounds(per_round: list[dict[str, Any]], raw_eps: float | None = None) -> dict[str, object]:
    """The report's figures from the rounds' (each a dict of ``faust_eps``, ``faust_tuned_eps``,
    ``screen_eps``, ``screen_outcomes_eps``, ``rss_mb``, as measured): each rate the median over
    the rounds, each ratio the median of the rounds' own ratios (a round's stages ran minutes
    apart at most, so its ratio is the one least moved by the machine's speed), ``rss_mb`` the
    largest, and ``rounds`` with every round's figures and ratios (and the host probe taken before
    each stage, ``probe_<stage>_ms``)."""
    measured = per_round[0].keys()
    out: dict[str, object] = {k: round(statistics.median(f[k] for f in per_round))
                              for k in ("faust_eps", "faust_tuned_eps", "screen_eps", "screen_outcomes_eps")
                              if k in measured}
    rows = [{k: (v if k.startswith("probe_") else round(v, 1) if k == "rss_mb" else round(v))
             for k, v in f.items()} for f in per_round]
    if "screen_eps" in measured:
        if raw_eps:
            out["screen_over_raw"] = round(out["screen_eps"] / raw_eps, 3)
        for key, ratio in RATIOS.items():
            if key in measured:
                out[ratio] = round(statistics.median(f["screen_eps"] / f[key] for f in per_round), 3)
                for row, f in zip(rows, per_round, strict=True):
                    row[ratio] = round(f["screen_eps"] / f[key], 3)
        out["rss_mb"] = round(max(f["rss_mb"] for f in per_round), 1)
    out["rounds"] = rows
    return out


SPEED_SPREAD = 1.3  # probes before a round's stages further apart than this: said after the report


def speed_notes(rounds: list[dict[str, Any]]) -> list[str]:
    """A line for each round whose host probe read a different speed before its Faust stage than
    before its screen stage: that round's ``screen_over_faust`` compares the host's speeds as much as
    the code (this machine's vCPUs switch between ~11 and ~20 ms on their own; docs/benchmarks.md,
    sessions 11 and 17). The figures are not changed."""
    notes = []
    for number, row in enumerate(rounds, 1):
        faust, screen = row.get("probe_faust_ms"), row.get("probe_screen_ms")
        if not faust or not screen or "screen_over_faust" not in row:
            continue
        before_faust, before_screen = statistics.mean(faust), statistics.mean(screen)
        if max(before_faust, before_screen) > SPEED_SPREAD * min(before_faust, before_screen):
            pace = "slower" if before_screen > before_faust else "faster"
            notes.append(f"round {number}: the host probe read {before_faust:.1f} ms before the Faust stage and "
                         f"{before_screen:.1f} ms before the screen stage (a {pace} host for the screen stage); "
                         f"its screen_over_faust {row['screen_over_faust']} compares the host's speeds as much as "
                         "the code")
    return notes


def default_home() -> Path:
    return Path(os.environ.get("RESIDENCY_HOME", Path.home() / ".cache" / "residency"))
