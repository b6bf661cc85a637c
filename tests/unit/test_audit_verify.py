"""Tamper cases on the live-record form: what the verifier reads from R.audit and its checkpoints."""

from __future__ import annotations

import pytest

from pipeline.audit.chain import ChainWriter
from pipeline.audit.entry import AuditEntry, canonical
from pipeline.audit.sample import SAMPLE_START, rewrite_entry, sample_trail
from pipeline.audit.signing import generate_signing_key, load_signing_key
from pipeline.audit.verify import verify

# sample_trail(partitions=2, fragments=12, checkpoint_every=4): per partition, offsets = seqs;
# checkpoints at seq 4, 9 and 14 (the last record); external checkpoints 0..2 for p0, 3..5 for p1.
CHECKPOINT_SEQS = (4, 9, 14)


@pytest.fixture(scope="module")
def signer():
    return load_signing_key(generate_signing_key())


@pytest.fixture(scope="module")
def intruder():
    return load_signing_key(generate_signing_key())


@pytest.fixture(scope="module")
def trail(signer):
    return sample_trail(signer, partitions=2)


@pytest.fixture
def keys(signer):
    return {signer.key_id: signer.public_key}


def index_of(records, partition, offset):
    return next(i for i, (p, o, _) in enumerate(records) if (p, o) == (partition, offset))


def with_value(records, partition, offset, value):
    """The same records with the value at ``(partition, offset)`` replaced; offsets are kept."""
    copy = list(records)
    copy[index_of(copy, partition, offset)] = (partition, offset, value)
    return copy


def value_at(records, partition, offset):
    return records[index_of(records, partition, offset)][2]


def assert_names(report, kind, partition, offset, seq):
    assert not report.ok
    error = report.first_error
    assert (error.kind, error.partition, error.offset, error.seq) == (kind, partition, offset, seq), (
        report.summary())


def test_when_nothing_is_tampered_then_verify_passes_with_counts(trail, keys):
    report = verify(trail.records, trail.checkpoints, keys)
    assert report.ok, report.summary()
    counts = report.counts
    assert (counts.entries, counts.fragments, counts.checkpoints) == (30, 24, 6)
    assert (counts.partitions, counts.event_ids) == (2, 12)
    assert report.summary().startswith("OK")


def test_when_a_record_is_modified_then_verify_names_it(trail, keys):
    value = value_at(trail.records, 1, 6).replace(b'"cleared"', b'"clearex"')
    report = verify(with_value(trail.records, 1, 6, value), trail.checkpoints, keys)
    assert_names(report, "modified", 1, 6, 6)
    assert report.first_error.event_id == "evt-1-2"


def test_when_a_record_is_modified_and_rehashed_then_verify_names_it(trail, keys):
    value = rewrite_entry(value_at(trail.records, 0, 2), body={"event_id": "evt-0-1", "stage": "x"})
    report = verify(with_value(trail.records, 0, 2, value), trail.checkpoints, keys)
    assert_names(report, "modified", 0, 2, 2)


def test_when_the_chain_is_rewritten_to_the_end_without_the_key_then_a_checkpoint_catches_it(
    trail, keys
):
    records = list(trail.records)
    prev = AuditEntry.from_bytes(value_at(records, 0, 5)).hash
    for offset in range(6, 15):  # rewrite seq 6 onward, relinking every later entry
        changes = {"prev": prev}
        if offset == 6:
            changes["body"] = {"event_id": "evt-0-2", "stage": "release", "decision": "rejected"}
        value = rewrite_entry(value_at(records, 0, offset), **changes)
        records = with_value(records, 0, offset, value)
        prev = AuditEntry.from_bytes(value).hash
    report = verify(records, trail.checkpoints, keys)
    assert report.first_error.kind == "checkpoint_mismatch"
    assert report.first_error.partition == 0 and 6 <= report.first_error.seq <= 9
    assert "after seq 4" in report.first_error.detail


def test_when_a_record_is_deleted_then_verify_names_the_record_after_the_gap(trail, keys):
    records = [r for r in trail.records if (r[0], r[1]) != (0, 7)]
    report = verify(records, trail.checkpoints, keys)
    assert_names(report, "missing", 0, 8, 8)
    assert "seq 7 not present" in report.first_error.detail


def test_when_the_first_record_is_deleted_then_the_chain_does_not_start_at_genesis(trail, keys):
    records = [r for r in trail.records if (r[0], r[1]) != (1, 0)]
    assert_names(verify(records, trail.checkpoints, keys), "missing", 1, 1, 1)


def test_when_two_neighbours_are_swapped_then_verify_names_the_first_as_reordered(trail, keys):
    records = with_value(trail.records, 0, 3, value_at(trail.records, 0, 2))
    records = with_value(records, 0, 2, value_at(trail.records, 0, 3))
    assert_names(verify(records, trail.checkpoints, keys), "reordered", 0, 2, 3)


def test_when_distant_records_are_swapped_then_verify_names_the_first_as_reordered(trail, keys):
    records = with_value(trail.records, 1, 11, value_at(trail.records, 1, 2))
    records = with_value(records, 1, 2, value_at(trail.records, 1, 11))
    assert_names(verify(records, trail.checkpoints, keys), "reordered", 1, 2, 11)


def test_when_a_record_is_replayed_then_the_seq_going_backwards_is_reordered(trail, keys):
    records = with_value(trail.records, 0, 6, value_at(trail.records, 0, 5))
    assert_names(verify(records, trail.checkpoints, keys), "reordered", 0, 6, 5)


def test_when_the_tail_is_truncated_then_the_external_checkpoint_reveals_it(trail, keys):
    records = [r for r in trail.records if not (r[0] == 1 and r[1] >= 10)]
    report = verify(records, trail.checkpoints, keys)
    assert_names(report, "truncated", 1, None, 10)
    assert report.counts.entries == 25


def test_when_only_the_last_checkpoint_entry_is_removed_then_it_is_truncated(trail, keys):
    records = [r for r in trail.records if (r[0], r[1]) != (0, 14)]
    assert_names(verify(records, trail.checkpoints, keys), "truncated", 0, None, 14)


def test_when_a_whole_partition_is_gone_then_it_is_truncated(trail, keys):
    records = [r for r in trail.records if r[0] == 0]
    assert_names(verify(records, trail.checkpoints, keys), "truncated", 1, None, 0)


def test_when_an_inline_checkpoint_is_forged_with_another_key_then_its_signature_is_bad(
    trail, keys, intruder
):
    writer = ChainWriter.resume("eu.audit", 0, value_at(trail.records, 0, 8))
    forged = writer.checkpoint(intruder, SAMPLE_START)
    report = verify(with_value(trail.records, 0, 9, forged), trail.checkpoints, keys)
    assert_names(report, "bad_checkpoint_signature", 0, 9, 9)
    assert intruder.key_id in report.first_error.detail


def test_when_an_external_checkpoint_is_forged_with_another_key_then_it_is_named(
    trail, keys, intruder
):
    writer = ChainWriter.resume("eu.audit", 1, value_at(trail.records, 1, 14))
    forged = (0, len(trail.checkpoints), writer.checkpoint(intruder, SAMPLE_START))
    report = verify(trail.records, trail.checkpoints + [forged], keys)
    error = report.first_error
    assert (error.kind, error.source, error.offset, error.partition, error.seq) == (
        "bad_checkpoint_signature", "checkpoints", 6, 1, 15)


def test_when_an_external_checkpoint_head_is_edited_and_rehashed_then_its_signature_is_bad(
    trail, keys
):
    original = AuditEntry.from_bytes(trail.checkpoints[1][2])
    value = rewrite_entry(trail.checkpoints[1][2], body={**original.body, "head": "0" * 64})
    checkpoints = [trail.checkpoints[0], (0, 1, value), *trail.checkpoints[2:]]
    error = verify(trail.records, checkpoints, keys).first_error
    assert (error.kind, error.source, error.offset) == ("bad_checkpoint_signature", "checkpoints", 1)


def test_when_a_trusted_key_signed_a_different_head_then_it_is_a_checkpoint_mismatch(
    trail, keys, signer
):
    fork = ChainWriter("eu.audit", 0, None)  # a zombie writer with another history
    for index in range(4):
        fork.append({"event_id": f"other-{index}"}, SAMPLE_START)
    checkpoints = [(0, 0, fork.checkpoint(signer, SAMPLE_START)), *trail.checkpoints[1:]]
    report = verify(trail.records, checkpoints, keys)
    assert_names(report, "checkpoint_mismatch", 0, 3, 3)


def test_when_a_record_is_not_an_entry_then_it_is_unparseable(trail, keys):
    report = verify(with_value(trail.records, 1, 3, b"\x00garbage"), trail.checkpoints, keys)
    assert_names(report, "unparseable", 1, 3, None)


def test_when_a_record_is_copied_from_another_partition_then_it_is_modified(trail, keys):
    report = verify(with_value(trail.records, 0, 3, value_at(trail.records, 1, 3)),
                    trail.checkpoints, keys)
    assert_names(report, "modified", 0, 3, 3)


def test_when_no_key_is_trusted_then_every_checkpoint_is_suspect(trail):
    report = verify(trail.records, trail.checkpoints, {})
    assert report.first_error.kind == "bad_checkpoint_signature"
    assert (report.first_error.partition, report.first_error.seq) == (0, 4)


def test_when_a_fragment_holds_a_value_then_no_finding_repeats_it(signer, keys):
    writer = ChainWriter("eu.audit", 0, None)
    value = writer.append({"event_id": "e1", "note": "4111111111111111"}, SAMPLE_START)
    tampered = value.replace(b"4111111111111111", b"4111111111111112")
    for records in ([(0, 0, tampered)], [(0, 0, tampered[:-3])], [(0, 0, canonical({"x": 1}))]):
        report = verify(records, [], keys)
        assert not report.ok
        assert "411111111111111" not in report.summary() + repr(report.errors)


def test_when_a_finding_is_described_then_it_names_its_coordinates(trail, keys, intruder):
    writer = ChainWriter.resume("eu.audit", 1, value_at(trail.records, 1, 14))
    forged = (2, 7, writer.checkpoint(intruder, SAMPLE_START))
    report = verify(trail.records, trail.checkpoints + [forged], keys)
    text = report.summary()
    assert text.startswith("FAILED")
    assert "R.audit.checkpoints (checkpoints partition=2, checkpoints offset=7, audit partition=1" in text
