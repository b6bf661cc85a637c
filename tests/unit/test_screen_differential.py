"""``screen()`` decides exactly what it decided before per-record detection and the compiled fast
paths: the same outcome, reason, detail, masked value and key, findings, masks, preview and egress
records, for 1,503 records (padded bench events, the generator's events, personal data in field
names and keys) under three policy variants (mask; hold with key masking and an egress profile;
reject with scanning off). The digests in ``tests/data/screen-decisions.txt`` were written by
``tests/unit/screen_corpus.py`` with the code of commit cfb95f3."""

from __future__ import annotations

from pathlib import Path

from tests.unit import screen_corpus

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "data" / "screen-decisions.txt"


def test_when_the_corpus_is_screened_then_every_decision_is_the_reference_one(tmp_path):
    expected = GOLDEN.read_text().splitlines()
    actual = screen_corpus.digests(REPO, tmp_path)
    assert len(actual) == len(expected) == 3 * 1503
    differing = [(e, a) for e, a in zip(expected, actual) if e != a]
    assert not differing, differing[:5]
