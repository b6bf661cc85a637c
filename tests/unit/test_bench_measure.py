"""Unit tests for what ``residency bench`` derives from its samples (pipeline/benchmark/measure.py)."""

from __future__ import annotations

from pipeline.benchmark.measure import by_second


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
