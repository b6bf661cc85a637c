"""Digests of ``screen()`` decisions over a fixed set of records and policies, for the differential
test that pins screening to what it decided before the per-record detection work (commit cfb95f3).

``python tests/unit/screen_corpus.py TREE > FILE`` writes the digests with the code of ``TREE``
(a checkout of the reference commit); the test recomputes them with the current code.
Imports happen inside the functions so that the code of ``TREE`` is the one used.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import orjson

SECRET = b"differential-test-secret-0123456789abcdef"
VARIANTS = {
    "example": {},
    "hold-keys-egress": {
        "    unexpected_pii: mask\n    hold:": "    unexpected_pii: hold\n    key_masking: {path: key, strategy: hash, "
                                              "params: {key: pii-hmac-2026}}\n    hold:",
        "  tickets:\n    partitions: 3\n": "  tickets:\n    partitions: 3\n    egress:\n      analytics:\n"
                                           "        region: eu\n        masking:\n          - {path: body, strategy: drop}\n"
                                           "          - {path: customer.country, strategy: redact}\n",
    },
    "reject-unlisted-off": {"unexpected_pii: mask": "unexpected_pii: reject", "    scan_unlisted: true\n    unexpected_pii: reject\n    hold:":
                            "    scan_unlisted: false\n    unexpected_pii: reject\n    hold:"},
}
EXTRA = [  # field names and keys holding personal data, nesting, odd keys
    (b"anna.berg@example.com", {"payment_id": "p-1", "amount": 1, "currency": "EUR", "subject": {"country": "DE"},
                                "extra": {"bob@example.org": "x", "4111111111111111": {"DE89370400440532013000": "y"}}}),
    (b"\xff\xfe", {"payment_id": "p-2", "amount": 2, "currency": "EUR", "subject": {"country": "DE"},
                   "items": [{"note": "call +49 30 1234567"}, ["tel 020 7946 0958", {"x": "ssn 123-45-6789"}]]}),
    (None, {"payment_id": "p-3", "amount": 3, "currency": "EUR", "subject": {"country": "DE"}, "card": None,
            "n": "\u0034\u200b111 1111 1111 1111", "b": "Y2FyZCA0MTExIDExMTEgMTExMSAxMTEx", "z": "a\u0000b"}),
]


def _policy_text(root: Path, replace: dict[str, str]) -> str:
    text = (root / "pipeline" / "examples" / "eu-policy.yaml").read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def records():
    from pipeline.benchmark.events import bench_events
    from pipeline.generator import generate
    from schemas.decision import RawRecord

    events = [*bench_events(1200, seed=11), *generate(300, seed=3)]
    out = [(e.dataset, RawRecord(f"eu.raw.{e.dataset}", 0, i, e.key, e.value, tuple(e.headers)))
           for i, e in enumerate(events)]
    out += [("payments", RawRecord("eu.raw.payments", 1, i, key, orjson.dumps(doc)))
            for i, (key, doc) in enumerate(EXTRA)]
    return out


def digests(root: Path, tmp: Path) -> list[str]:
    """One line per (policy variant, record): the variant, the index and a digest of the decision."""
    from pipeline.keys import KeyRing
    from pipeline.plan import compile_plans
    from pipeline.policy import load_policy
    from pipeline.screen import screen

    lines = []
    batch = records()
    for variant, replace in VARIANTS.items():
        path = tmp / f"{variant}.yaml"
        path.write_text(_policy_text(root, replace))
        plans = compile_plans(load_policy(path), KeyRing({"pii-hmac-2026": SECRET}))
        for index, (dataset, record) in enumerate(batch):
            d = screen(record, plans[dataset])
            summary = [str(d.outcome), d.event_id, d.reason, d.detail, d.value, d.key,
                       [(f.type, f.path) for f in d.findings], [(m.path, m.strategy, m.key_id) for m in d.masked],
                       d.preview, d.producer, [(e.profile, e.topic, e.key, e.value, [(m.path, m.strategy, m.key_id) for m in e.masked]) for e in d.egress]]
            digest = hashlib.sha256(orjson.dumps(summary, default=lambda b: b.hex() if isinstance(b, bytes) else repr(b))).hexdigest()
            lines.append(f"{variant} {index} {str(d.outcome)} {digest[:16]}")
    return lines


if __name__ == "__main__":
    import tempfile

    tree = Path(sys.argv[1]).resolve()
    sys.path.insert(0, str(tree))
    with tempfile.TemporaryDirectory() as tmp:
        print("\n".join(digests(tree, Path(tmp))))
