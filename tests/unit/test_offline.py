"""`residency mask`: JSON Lines in, one decision per line out, with exactly the agents' code."""

from __future__ import annotations

import io
import subprocess
import sys

import orjson

from pipeline.offline import mask_stream
from tests.conftest import EXAMPLE_POLICY, REPO

CARD = "4111111111111111"
LINES = [
    {"ticket_id": "t1", "body": f"card {CARD} please", "customer": {"country": "DE", "email": "a@example.com"}},
    {"ticket_id": "t2", "body": "hi", "customer": {"country": "BR"}},
]


def test_when_lines_are_masked_then_each_gets_a_decision_event_and_findings(policy_factory, keys):
    source = io.BytesIO(b"\n".join(orjson.dumps(line) for line in LINES) + b"\n{broken\n\n[1]\n")
    sink = io.BytesIO()
    assert mask_stream(policy_factory(), keys, "tickets", source, sink) == 0
    out = [orjson.loads(line) for line in sink.getvalue().splitlines()]
    assert [o["decision"] for o in out] == ["cleared", "held", "deadletter", "deadletter"]
    assert out[0]["findings"] == [{"type": "card", "path": "body"}]
    assert CARD not in orjson.dumps(out[0]["event"]).decode()
    assert out[0]["event"]["customer"]["email"].startswith("hmac:pii-hmac-2026:")
    assert out[1]["reason"] == "jurisdiction_violation" and out[1]["event"]["ticket_id"] == "t2"
    assert out[2]["reason"] == "invalid_json" and out[2]["event"] is None
    assert out[3]["reason"] == "not_an_object"


def test_when_the_cli_masks_stdin_then_it_writes_json_lines(tmp_path, keys_file):
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "mask", "--policy", str(EXAMPLE_POLICY), "--dataset", "tickets", "-"],
        input=b"\n".join(orjson.dumps(line) for line in LINES), capture_output=True, cwd=REPO, timeout=60,
        env={"RESIDENCY_KEYS_FILE": str(keys_file), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    decisions = [orjson.loads(line)["decision"] for line in result.stdout.splitlines()]
    assert decisions == ["cleared", "held"]
    assert CARD.encode() not in result.stdout
