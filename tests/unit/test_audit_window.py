"""Verifying a time window: anchored at a checkpoint before ``since``, closed by one after ``until``."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from pipeline.audit.bundle import AUDIT_FILE, MANIFEST_FILE, export_bundle, verify_bundle
from pipeline.audit.sample import SAMPLE_START, sample_trail
from pipeline.audit.signing import generate_signing_key, load_signing_key
from pipeline.audit.verify import verify
from pipeline.audit.window import select_window

# One partition, one second per entry from SAMPLE_START: seq s is at second s + 1;
# checkpoints at seq 4 (second 5), 9 (second 10) and 14 (second 15).
SINCE = SAMPLE_START + timedelta(seconds=7)  # seq 6
UNTIL = SAMPLE_START + timedelta(seconds=11)  # seq 10


@pytest.fixture(scope="module")
def signer():
    return load_signing_key(generate_signing_key())


@pytest.fixture(scope="module")
def trail(signer):
    return sample_trail(signer)


@pytest.fixture
def keys(signer):
    return {signer.key_id: signer.public_key}


def from_offset(records, first):
    return [record for record in records if record[1] >= first]


def test_when_a_window_is_selected_then_it_runs_from_checkpoint_to_checkpoint(trail):
    records, checkpoints = select_window(trail.records, trail.checkpoints, since=SINCE, until=UNTIL)
    assert [offset for _, offset, _ in records] == list(range(4, 15))
    assert len(checkpoints) == 3


def test_when_a_window_is_verified_then_only_entries_inside_it_are_counted(trail, keys):
    report = verify(trail.records, trail.checkpoints, keys, since=SINCE, until=UNTIL)
    assert report.ok, report.summary()
    counts = report.counts
    assert (counts.entries, counts.fragments, counts.checkpoints) == (5, 4, 1)
    assert counts.context_entries == 10


def test_when_a_windowed_bundle_is_exported_then_it_verifies_offline(tmp_path, trail, keys, signer):
    export_bundle(trail.records, trail.checkpoints, [signer.public_key_pem()], tmp_path / "b",
                  since=SINCE, until=UNTIL)
    manifest = orjson.loads((tmp_path / "b" / MANIFEST_FILE).read_bytes())
    assert manifest["since"] == "2024-01-01T00:00:07.000000Z"
    assert manifest["partitions"]["0"] == {"first_offset": 4, "last_offset": 14, "records": 11}
    report = verify_bundle(tmp_path / "b", keys)
    assert report.ok, report.summary()
    assert report.counts.entries == 5


def test_when_the_anchor_is_cut_from_a_windowed_bundle_then_it_is_missing(tmp_path, trail, keys,
                                                                          signer):
    export_bundle(trail.records, trail.checkpoints, [signer.public_key_pem()], tmp_path / "b",
                  since=SINCE, until=UNTIL)
    path = tmp_path / "b" / AUDIT_FILE
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[2:]))
    error = verify_bundle(tmp_path / "b", keys).first_error
    assert (error.kind, error.offset, error.line) == ("missing", 6, 1)


def test_when_records_start_right_after_an_external_checkpoint_then_it_anchors_them(trail, keys):
    report = verify(from_offset(trail.records, 5), trail.checkpoints, keys, since=SINCE)
    assert report.ok, report.summary()


def test_when_records_start_without_an_anchor_then_the_window_is_missing(trail, keys):
    error = verify(from_offset(trail.records, 6), trail.checkpoints, keys, since=SINCE).first_error
    assert (error.kind, error.offset, error.seq) == ("missing", 6, 6)


def test_when_the_anchor_is_after_since_then_the_window_is_not_covered(trail, keys):
    since = SAMPLE_START + timedelta(seconds=3)
    error = verify(from_offset(trail.records, 4), trail.checkpoints, keys, since=since).first_error
    assert (error.kind, error.seq) == ("missing", 4)
    assert "after since" in error.detail


def test_when_no_window_is_given_then_verification_must_start_at_genesis(trail, keys):
    error = verify(from_offset(trail.records, 4), trail.checkpoints, keys).first_error
    assert (error.kind, error.seq) == ("missing", 4)
