"""``scan()`` returns exactly the spans it returned before its fast paths: for every text of the
detection corpus (``tests/unit/detection_corpus.py``, ~43,000 texts with the hints ``screen`` would
give them), the same ``(type, start, end)`` list. ``tests/data/scan-spans.txt`` holds one digest per
group of texts, written by ``python -m tests.unit.test_scan_spans > tests/data/scan-spans.txt`` with
the code of commit b95aa33 (before ``scan`` learned to skip the phone detector, to decode only
readable-looking base64 runs, ...). Regenerating it with changed code would defeat the test."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline.detection import Budget, scan
from tests.unit import detection_corpus

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "scan-spans.txt"


def digests() -> list[str]:
    lines = []
    for index, group in enumerate(detection_corpus.groups()):
        found = [[(s.type, s.start, s.end) for s in scan(text, Budget(None, None), hint=hint)] for text, hint in group]
        lines.append(f"{index} {sum(map(len, found))} {hashlib.sha256(repr(found).encode()).hexdigest()[:16]}")
    return lines


def test_when_the_corpus_is_scanned_then_every_span_is_the_reference_one():
    expected = GOLDEN.read_text().splitlines()
    actual = digests()
    assert len(actual) == len(expected)
    assert sum(int(line.split()[1]) for line in expected) > 5000  # the corpus is full of findings
    differing = [(e, a) for e, a in zip(expected, actual) if e != a]
    assert not differing, differing[:5]


if __name__ == "__main__":
    print("\n".join(digests()))
