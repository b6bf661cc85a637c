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
