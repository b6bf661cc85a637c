"""The worker's tail verification of its audit partitions (pipeline/audittail.py): runs over an
in-memory partition, written by the real ChainWriter, as the worker's timer would make them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.audit import ChainWriter, generate_signing_key, load_public_keys, load_signing_key
from pipeline.audittail import TailCursor, TailResult, check_tail, plan_read, truncation

TOPIC = "eu.audit"
SIGNER = load_signing_key(generate_signing_key())
KEYS = load_public_keys([SIGNER.public_key_pem()])
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Partition:
    """One partition of R.audit: a list of values whose index is the offset, and its writer."""

    def __init__(self, partition: int = 0) -> None:
        self.partition = partition
        self.values: list[bytes] = []
        self.writer = ChainWriter(TOPIC, partition)
        self.begin = 0

    def write(self, fragments: int, checkpoint_every: int = 10, signer=SIGNER) -> None:  # noqa: ANN001
        for _ in range(fragments):
            at = T0 + timedelta(seconds=len(self.values))
            self.values.append(self.writer.append({"event_id": f"evt-{len(self.values)}", "stage": "screen"}, at))
            if self.writer.entries_since_checkpoint >= checkpoint_every:
                self.values.append(self.writer.checkpoint(signer, at))

    @property
    def end(self) -> int:
        return len(self.values)


def run(cursor: TailCursor, part: Partition, max_records: int = 1000) -> TailResult:
    """One run of the worker's timer for this partition."""
    finding = truncation(cursor, part.partition, part.end)
    plan = plan_read(cursor, part.begin, part.end, max_records)
    if plan is None:
        return TailResult(finding=finding)
    records = [(offset, part.values[offset]) for offset in range(plan.start, plan.stop)]
    result = check_tail(cursor, part.partition, records, begin=part.begin, keys=KEYS, topic=TOPIC)
    return TailResult(finding=finding or result.finding, verified=result.verified, skipped=plan.skipped)


def test_when_the_chain_grows_then_each_entry_is_verified_once_and_nothing_is_found() -> None:
    part, cursor = Partition(), TailCursor()
    part.write(25)
    first = run(cursor, part)
    part.write(40)
    second = run(cursor, part)
    third = run(cursor, part)

    assert (first.finding, second.finding) == (None, None)
    assert first.verified + second.verified == part.end
    assert third.verified == 0
    assert part.end - cursor.anchor <= 11, "the next run re-reads at most one checkpoint interval"


def test_when_a_forged_entry_is_appended_and_the_worker_writes_on_then_it_is_found_once() -> None:
    part, cursor = Partition(), TailCursor()
    part.write(25)
    assert run(cursor, part).finding is None
    forger = ChainWriter.resume(TOPIC, 0, part.values[-1])  # well-formed, correctly linked
    part.values.append(forger.append({"event_id": "forged", "stage": "screen"}, T0))
    forged_offset = part.end - 1
    part.write(30)  # the worker's own writer continues from its head, unaware

    found = run(cursor, part)
    part.write(30)
    later = [run(cursor, part) for _ in range(3)]

    assert found.finding is not None and found.finding.kind == "reordered"
    assert found.finding.offset == forged_offset + 1, "the worker's entry after the forgery reuses its seq"
    assert [r.finding for r in later] == [None, None, None], "one tampering counts once"
    assert [r.skipped for r in later] == [0, 0, 0], "resuming after a bad record skips nothing"
    assert sum(r.verified for r in later) > 0, "verification resumes at the next checkpoint"


@pytest.mark.parametrize("damage, kind", [
    (lambda v: v.replace(b'"stage":"screen"', b'"stage":"scrxen"'), "modified"),
    (lambda v: b"not json", "unparseable"),
])
def test_when_a_record_in_the_tail_is_changed_then_it_is_named(damage, kind: str) -> None:  # noqa: ANN001
    part, cursor = Partition(), TailCursor()
    part.write(25)
    assert run(cursor, part).finding is None
    part.write(15)
    victim = part.end - 3
    part.values[victim] = damage(part.values[victim])

    result = run(cursor, part)

    assert result.finding is not None and result.finding.kind == kind and result.finding.offset == victim


def test_when_a_checkpoint_is_signed_by_an_untrusted_key_then_it_is_found() -> None:
    part, cursor = Partition(), TailCursor()
    part.write(25)
    assert run(cursor, part).finding is None
    part.write(10, signer=load_signing_key(generate_signing_key()))

    result = run(cursor, part)

    assert result.finding is not None and result.finding.kind == "bad_checkpoint_signature"


def test_when_records_disappear_from_the_end_then_truncation_is_found() -> None:
    part, cursor = Partition(), TailCursor()
    part.write(25)
    assert run(cursor, part).finding is None
    del part.values[20:]

    result = run(cursor, part)

    assert result.finding is not None and result.finding.kind == "truncated"
    assert run(cursor, part).finding is None, "counted once, not on every run"


def test_when_the_partition_outruns_the_budget_then_the_newest_records_are_verified_and_the_rest_skipped() -> None:
    part, cursor = Partition(), TailCursor()
    part.write(25)
    run(cursor, part, max_records=100)
    part.write(500)

    result = run(cursor, part, max_records=100)

    assert result.finding is None and result.skipped > 0
    assert result.verified + result.skipped <= part.end
    assert cursor.verified_to == part.end - 1


def test_when_a_worker_first_looks_then_it_starts_near_the_end_not_at_genesis() -> None:
    part, cursor = Partition(), TailCursor()
    part.write(2000)

    result = run(cursor, part, max_records=100)

    assert result.finding is None and 0 < result.verified <= 100
    assert result.skipped == 0, "starting near the end is the scope, not a skip"


def test_when_a_young_partition_has_no_checkpoint_yet_then_it_is_verified_from_genesis() -> None:
    part, cursor = Partition(), TailCursor()
    part.write(5, checkpoint_every=1000)
    genesis_damaged = Partition()
    genesis_damaged.write(5, checkpoint_every=1000)
    genesis_damaged.values[2] = genesis_damaged.values[2].replace(b"evt-2", b"evt-X")

    assert run(cursor, part) == TailResult(verified=5)
    assert run(TailCursor(), genesis_damaged).finding.kind == "modified"


def test_the_verifier_child_runs_at_a_lower_priority_than_the_worker():
    import subprocess
    import sys

    code = ("import os; from pipeline.auditchild import lower_priority; "
            "before = os.nice(0); lower_priority(); print(before, os.nice(0))")
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    before, after = map(int, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                            check=True, cwd=root).stdout.split())
    assert after == min(19, before + 19) > before or before == 19
