"""A reproducible corpus of (text, hint) pairs for differential tests of detection.

The generator's padded bench events (every value, field name and key), both detection corpora,
evasive values of every kind, random ASCII rich in the bytes the detectors look at, and valid values
glued to noise. Texts come in groups of about a record's size, as ``screen`` hands them over.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import orjson

from pipeline.benchmark.events import bench_events
from pipeline.detection import samples

DATA = Path(__file__).resolve().parents[1] / "data" / "detection"
NOISY = "0123456789abcdefxyzABXYZ .-/:@%\\+=_()[]<>{}\"'#\n\tu"
HINTS = (None, "note", "ssn", "nhs_number", "phone", "bsn", "pesel", "tax_id", "personnummer", "body")
NOT_FOR = {"separators": {"email", "ipv4", "ipv6"}}  # separators go inside digit runs only


def _walk(node: object, name: str | None, out: list[tuple[str, str | None]]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((key, None))
            _walk(value, key, out)
    elif isinstance(node, list):
        for value in node:
            _walk(value, name, out)
    elif isinstance(node, str):
        out.append((node, name))


def event_groups(count: int) -> list[list[tuple[str, str | None]]]:
    """Per padded bench event: every string value (hinted with its field name), key and name."""
    groups = []
    for event in bench_events(count):
        group: list[tuple[str, str | None]] = []
        try:
            _walk(orjson.loads(event.value), None, group)
        except orjson.JSONDecodeError:
            group.append((event.value.decode("utf-8", "replace"), None))
        if event.key is not None:
            group.append((event.key.decode("utf-8", "replace"), None))
        groups.append(group)
    return groups


def evasive(kind: str, rng: random.Random) -> str:
    value = samples.GENERATORS[kind](rng)
    chosen = [e for e in samples.CHARACTER_EVASIONS if rng.random() < 0.4 and kind not in NOT_FOR.get(e, ())]
    text = samples.evade(value, rng, chosen)
    encoding = rng.choice([None, None, *samples.ENCODING_EVASIONS])
    if encoding:
        text = samples.ENCODING_EVASIONS[encoding](text, rng)
    return rng.choice(samples.TEMPLATES[kind]).format(v=text)


def _noise(rng: random.Random, low: int, high: int) -> str:
    return "".join(rng.choice(NOISY) for _ in range(rng.randint(low, high)))


def other_texts(seed: int = 41280, per_kind: int = 300, random_count: int = 5000,
                glued: int = 3000) -> list[str]:
    rng = random.Random(seed)
    texts = [json.loads(line)["text"] for line in (DATA / "positives.jsonl").read_text().splitlines()
             if line and not line.startswith("#")]
    texts += [line for line in (DATA / "negatives.txt").read_text().splitlines() if line and not line.startswith("#")]
    texts += [evasive(kind, rng) for kind in samples.GENERATORS for _ in range(per_kind)]
    texts += [_noise(rng, 0, 60) for _ in range(random_count)]
    kinds = list(samples.GENERATORS)
    texts += [_noise(rng, 0, 6) + samples.GENERATORS[rng.choice(kinds)](rng) + _noise(rng, 0, 6) for _ in range(glued)]
    return texts


def groups(events: int = 500, seed: int = 41280) -> list[list[tuple[str, str | None]]]:
    """The whole corpus in record-sized groups, each text with the hint ``screen`` would give it."""
    rng = random.Random(seed)
    out = event_groups(events)
    texts = other_texts(seed)
    for start in range(0, len(texts), 20):
        out.append([(text, rng.choice(HINTS)) for text in texts[start : start + 20]])
    return out
