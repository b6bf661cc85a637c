"""``residency bench`` flags: each one given overrides its ``Options`` default, the rest keep theirs."""

from __future__ import annotations

import pytest

from pipeline.benchmark.options import Options
from pipeline.cli import bench_options, parser


def _options(*argv: str) -> Options:
    return bench_options(parser().parse_args(["bench", *argv]))


def test_no_flag_gives_the_options_defaults() -> None:
    assert _options() == Options()


def test_flags_override_their_defaults_only() -> None:
    options = _options("--events", "5000", "--workers", "2", "--screen-processes", "0", "--compare", "1,1",
                       "--stages", "raw,screen", "--latency-warmup", "0", "--rounds", "1")
    assert (options.events, options.workers, options.screen_processes, options.compare) == (5000, 2, 0, (1, 1))
    assert options.stages == ("raw", "screen") and options.warmup_s == 0 and options.rounds == 1
    assert options.latency_s == Options().latency_s


def test_compare_none_skips_it_and_a_bad_shape_is_refused() -> None:
    assert _options("--compare", "none").compare is None
    with pytest.raises(SystemExit, match="WORKERS,HELPERS"):
        _options("--compare", "2x")
    with pytest.raises(SystemExit, match="1-8 workers"):
        _options("--compare", "0,1")


def test_rounds_give_medians_and_the_median_of_each_rounds_own_ratio() -> None:
    from pipeline.benchmark.main import summarize_rounds

    rounds = [  # a slow round, a fast round, a round where only the screen stage ran slow
        {"faust_eps": 1000.0, "faust_tuned_eps": 2000.0, "screen_eps": 1400.0, "screen_outcomes_eps": 1500.0,
         "rss_mb": 350.04},
        {"faust_eps": 2000.0, "faust_tuned_eps": 4000.0, "screen_eps": 3200.0, "screen_outcomes_eps": 3300.0,
         "rss_mb": 380.0},
        {"faust_eps": 2000.0, "faust_tuned_eps": 4000.0, "screen_eps": 2000.0, "screen_outcomes_eps": 2100.0,
         "rss_mb": 360.0},
    ]
    out = summarize_rounds(rounds, raw_eps=20000.0)
    assert (out["faust_eps"], out["faust_tuned_eps"], out["screen_eps"]) == (2000, 4000, 2000)
    assert out["screen_over_faust"] == 1.4  # median of 1.4, 1.6 and 1.0 (the ratio of medians is 1.0)
    assert out["screen_over_tuned"] == 0.7 and out["screen_over_raw"] == 0.1
    assert out["screen_outcomes_eps"] == 2100 and out["rss_mb"] == 380.0
    assert [r["screen_over_faust"] for r in out["rounds"]] == [1.4, 1.6, 1.0]
    assert out["rounds"][0]["rss_mb"] == 350.0


def test_baselines_alone_give_no_ratio() -> None:
    from pipeline.benchmark.main import summarize_rounds

    out = summarize_rounds([{"faust_eps": 1000.0}, {"faust_eps": 3000.0}])
    assert out == {"faust_eps": 2000, "rounds": [{"faust_eps": 1000}, {"faust_eps": 3000}]}


def test_each_round_keeps_the_host_probe_taken_before_its_stages() -> None:
    from pipeline.benchmark.main import summarize_rounds

    out = summarize_rounds([{"faust_eps": 2000.0, "probe_faust_ms": [11.4, 20.1], "screen_eps": 3000.0,
                             "probe_screen_ms": [20.2, 20.6], "screen_outcomes_eps": 3100.0, "rss_mb": 350.0}])
    assert out["rounds"][0]["probe_faust_ms"] == [11.4, 20.1] and out["rounds"][0]["probe_screen_ms"] == [20.2, 20.6]
    assert "probe_faust_ms" not in out  # a probe is a round's, never a median


def test_the_host_probe_times_a_fixed_loop_on_each_cpu_and_leaves_the_affinity_as_it_was() -> None:
    import os

    from pipeline.benchmark.measure import host_probe

    before = os.sched_getaffinity(0)
    probes = host_probe(passes=1)
    assert len(probes) == len(before) and all(1.0 < p < 5000.0 for p in probes), probes
    assert os.sched_getaffinity(0) == before


def test_a_round_whose_stages_ran_at_different_host_speeds_is_said_and_its_figures_kept() -> None:
    from pipeline.benchmark.main import speed_notes, summarize_rounds

    rounds = [  # run 1 of docs/benchmarks.md, session 17: Faust at ~11 ms, screen at ~19 ms; then both ~20 ms
        {"probe_faust_ms": [10.7, 10.5], "faust_eps": 2742.0, "probe_screen_ms": [18.5, 19.6], "screen_eps": 3564.0,
         "screen_outcomes_eps": 3724.0, "rss_mb": 351.5},
        {"probe_faust_ms": [18.6, 19.7], "faust_eps": 1972.0, "probe_screen_ms": [20.8, 19.8], "screen_eps": 3536.0,
         "screen_outcomes_eps": 3608.0, "rss_mb": 353.3},
    ]
    out = summarize_rounds(rounds)
    notes = speed_notes(out["rounds"])
    assert len(notes) == 1 and notes[0].startswith("round 1:") and "slower" in notes[0] and "1.3" in notes[0]
    assert [r["screen_over_faust"] for r in out["rounds"]] == [1.3, 1.793]  # unchanged
    assert speed_notes([{"faust_eps": 2000}]) == [] and speed_notes([{**out["rounds"][1]}]) == []


def test_without_the_load_generator_the_screen_stage_stops_before_it_starts(
        monkeypatch: pytest.MonkeyPatch, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    import sys

    from pipeline.benchmark.main import run_bench

    monkeypatch.setitem(sys.modules, "confluent_kafka", None)  # as if the bench extra were not installed
    assert run_bench(_options("--stages", "screen"), None, tmp_path / "home") == 2
    out = capsys.readouterr()
    assert "pip install -e '.[bench]'" in out.out + out.err
    assert not (tmp_path / "home").exists()  # no run directory, no broker
    monkeypatch.delitem(sys.modules, "confluent_kafka")
    from pipeline.benchmark.run import load_generator_problem

    assert load_generator_problem() is None  # installed (make installs the bench extra)


def test_a_runs_topics_are_its_regions_and_its_copies_only() -> None:
    from pipeline.benchmark.run import region_topics

    names = ["bench1a2b3c.raw.payments", "bench1a2b3c.residency-provenance-changelog", "bench1a2b3c-r2.audit",
             "bench1a2b3c-rec.residency-provenance-changelog", "bench1a2b3c-cmp.cleared.tickets",
             "bench1a2b3cd.raw.payments", "bench9f9f9f.raw.payments", "eu.raw.payments", "bench1a2b3c",
             "__consumer_offsets", "bench1a2b3c-.raw", "xbench1a2b3c.raw.payments"]
    assert region_topics(names, "bench1a2b3c") == sorted(names[:5])
    assert _options().keep_topics is False and _options("--keep-topics").keep_topics is True
