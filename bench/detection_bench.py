"""Detection benchmark: recall per type under evasions, false positives on the negative corpus,
and single-core scan throughput. Run: ``python bench/detection_bench.py [--per-type N] [--seed S]``."""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.detection import Budget, scan, scan_each  # noqa: E402
from pipeline.detection import samples  # noqa: E402

DATA = ROOT / "tests" / "data" / "detection"
NOT_FOR = {"separators": {"email", "ipv4", "ipv6"}}  # separators inside digit runs only


def evasive_text(kind: str, rng: random.Random) -> str:
    value = samples.GENERATORS[kind](rng)
    character = [e for e in samples.CHARACTER_EVASIONS if rng.random() < 0.4 and kind not in NOT_FOR.get(e, ())]
    evaded = samples.evade(value, rng, character)
    template = rng.choice(samples.TEMPLATES[kind])
    encoding = rng.choice([None, None, *samples.ENCODING_EVASIONS])
    if encoding:
        evaded = samples.ENCODING_EVASIONS[encoding](evaded, rng)
    return template.format(v=evaded)


def recall(per_type: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    result = {}
    for kind in samples.GENERATORS:
        hits = sum(bool(scan(evasive_text(kind, rng))) for _ in range(per_type))
        result[kind] = hits / per_type
    return result


def lines(name: str) -> list[str]:
    return [l for l in (DATA / name).read_text().splitlines() if l and not l.startswith("#")]


def throughput(texts: list[str], rounds: int = 3) -> tuple[float, float]:
    size = sum(len(t.encode()) for t in texts)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for text in texts:
            scan(text, Budget(max_seconds=None, max_chars=None))
        best = min(best, time.perf_counter() - start)
    return len(texts) / best, size / best / 1e6


ADVERSARIAL = {
    "1 MB digit run": lambda: "".join(random.Random(1).choice("0123456789") for _ in range(1_000_000)),
    "1 MB '4 1 ' digits": lambda: "4 1 " * 250_000,
    "1 MB separator run": lambda: "1" + " -./" * 250_000 + "2",
    "1 MB 'aaaa@'": lambda: "aaaa@" * 200_000,
    "1 MB unicode digits": lambda: "４١१ \u200b" * 200_000,
    "1 MB nested base64": lambda: base64.b64encode(base64.b64encode(b"x 4111 " * 200_000)).decode()[:1_000_000],
    "1 MB log text": lambda: "GET /api/orders/12345?user=ann@example.com 200 2024-01-15T10:30:00Z\n" * 15_000,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-type", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()

    print(f"recall under random evasions ({args.per_type} per type, seed {args.seed})")
    for kind, value in recall(args.per_type, args.seed).items():
        print(f"  {kind:20s} {value:7.2%}")

    corpus = [json.loads(l) for l in lines("positives.jsonl")]
    caught = sum(row["type"] in {s.type for s in scan(row["text"])} for row in corpus)
    print(f"positive corpus: {caught}/{len(corpus)} caught with the right type ({caught / len(corpus):.2%})")

    negatives = lines("negatives.txt")
    flagged = [line for line in negatives if scan(line)]
    print(f"false positives on negatives: {len(flagged)}/{len(negatives)} ({len(flagged) / len(negatives):.2%})")

    mixed = negatives + [row["text"] for row in corpus]
    per_s, mb_s = throughput(mixed)
    print(f"throughput, mixed short strings (one core): {per_s:,.0f} strings/s, {mb_s:.2f} MB/s")
    for name, build in ADVERSARIAL.items():
        text = build()
        start = time.perf_counter()
        scan(text, Budget(max_seconds=None, max_chars=None))
        elapsed = time.perf_counter() - start
        start = time.perf_counter()
        scan_each(["EUR", text, "2026-11-05T10:22:00Z"], Budget(max_seconds=None, max_chars=None))
        per_record = time.perf_counter() - start
        print(f"  {name:24s} {elapsed:6.2f} s  ({len(text.encode()) / elapsed / 1e6:.2f} MB/s); "
              f"in a record (scan_each) {per_record:6.2f} s")


if __name__ == "__main__":
    main()
