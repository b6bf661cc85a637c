"""Tamper cases on the bundle form: files on disk, verified offline with no broker."""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest

from pipeline.audit.bundle import (
    AUDIT_FILE,
    CHECKPOINTS_FILE,
    KEYS_DIR,
    MANIFEST_FILE,
    export_bundle,
    verify_bundle,
)
from pipeline.audit.chain import ChainWriter
from pipeline.audit.entry import AuditEntry
from pipeline.audit.sample import SAMPLE_START, rewrite_entry, sample_trail
from pipeline.audit.signing import generate_signing_key, load_signing_key

# Two partitions of 15 records each (seqs = offsets); audit.jsonl line n (1-based) holds
# partition (n - 1) // 15, offset (n - 1) % 15. Checkpoints at seq 4, 9 and 14.


@pytest.fixture(scope="module")
def signer():
    return load_signing_key(generate_signing_key())


@pytest.fixture(scope="module")
def intruder():
    return load_signing_key(generate_signing_key())


@pytest.fixture
def keys(signer):
    return {signer.key_id: signer.public_key}


@pytest.fixture
def bundle(tmp_path, signer):
    trail = sample_trail(signer, partitions=2)
    report = export_bundle(trail.records, trail.checkpoints, [signer.public_key_pem()],
                           tmp_path / "bundle")
    assert report.ok, report.summary()
    return tmp_path / "bundle"


def read_lines(path):
    return path.read_bytes().splitlines(keepends=True)


def write_lines(path, lines):
    path.write_bytes(b"".join(lines))


def edit_value(path, number, edit):
    """Decode line ``number`` (1-based), apply ``edit`` to the record value, write it back."""
    lines = read_lines(path)
    line = orjson.loads(lines[number - 1])
    line["value"] = base64.b64encode(edit(base64.b64decode(line["value"]))).decode()
    lines[number - 1] = orjson.dumps(line, option=orjson.OPT_SORT_KEYS) + b"\n"
    write_lines(path, lines)


def reseal_manifest(bundle):
    """What a careful attacker does after editing files: recompute the manifest hashes."""
    manifest = orjson.loads((bundle / MANIFEST_FILE).read_bytes())
    for name in manifest["files"]:
        manifest["files"][name] = hashlib.sha256((bundle / name).read_bytes()).hexdigest()
    (bundle / MANIFEST_FILE).write_bytes(orjson.dumps(manifest))


def assert_names(report, kind, partition, offset, seq, line):
    assert not report.ok
    error = report.first_error
    assert (error.kind, error.partition, error.offset, error.seq, error.line) == (
        kind, partition, offset, seq, line), report.summary()


def test_when_the_bundle_is_intact_then_it_verifies_offline(bundle, keys):
    report = verify_bundle(bundle, keys)
    assert report.ok, report.summary()
    assert (report.counts.entries, report.counts.event_ids) == (30, 12)
    manifest = orjson.loads((bundle / MANIFEST_FILE).read_bytes())
    assert manifest["counts"]["entries"] == 30
    assert set(manifest["files"]) == {AUDIT_FILE, CHECKPOINTS_FILE, f"{KEYS_DIR}/{next(iter(keys))}.pem"}


@pytest.mark.parametrize("reseal", [False, True])
def test_when_one_byte_of_a_record_is_modified_then_the_bundle_names_it(bundle, keys, reseal):
    edit_value(bundle / AUDIT_FILE, 18, lambda v: v.replace(b'"cleared"', b'"cleares"'))
    if reseal:
        reseal_manifest(bundle)
    assert_names(verify_bundle(bundle, keys), "modified", 1, 2, 2, 18)


def test_when_a_line_is_deleted_then_the_bundle_names_the_record_after_it(bundle, keys):
    lines = read_lines(bundle / AUDIT_FILE)
    write_lines(bundle / AUDIT_FILE, lines[:6] + lines[7:])
    reseal_manifest(bundle)
    assert_names(verify_bundle(bundle, keys), "missing", 0, 7, 7, 7)


def test_when_two_lines_are_swapped_then_the_bundle_names_the_first(bundle, keys):
    lines = read_lines(bundle / AUDIT_FILE)
    lines[2], lines[3] = lines[3], lines[2]
    write_lines(bundle / AUDIT_FILE, lines)
    reseal_manifest(bundle)
    assert_names(verify_bundle(bundle, keys), "reordered", 0, 3, 3, 3)


def test_when_the_tail_is_truncated_then_the_bundle_is_truncated(bundle, keys):
    write_lines(bundle / AUDIT_FILE, read_lines(bundle / AUDIT_FILE)[:-4])
    reseal_manifest(bundle)
    assert_names(verify_bundle(bundle, keys), "truncated", 1, None, 11, None)


def test_when_a_checkpoint_is_replaced_by_an_edited_one_then_its_signature_is_bad(bundle, keys):
    def edit(value):
        body = AuditEntry.from_bytes(value).body
        return rewrite_entry(value, body={**body, "seq": 2, "count": 3})
    edit_value(bundle / CHECKPOINTS_FILE, 2, edit)
    reseal_manifest(bundle)
    error = verify_bundle(bundle, keys).first_error
    assert (error.kind, error.file, error.line, error.partition) == (
        "bad_checkpoint_signature", CHECKPOINTS_FILE, 2, 0)


def test_when_a_checkpoint_is_forged_with_another_key_then_the_bundle_names_it(
    bundle, keys, intruder
):
    before = base64.b64decode(orjson.loads(read_lines(bundle / AUDIT_FILE)[8])["value"])
    writer = ChainWriter.resume("eu.audit", 0, before)
    edit_value(bundle / AUDIT_FILE, 10, lambda _: writer.checkpoint(intruder, SAMPLE_START))
    (bundle / KEYS_DIR / f"{intruder.key_id}.pem").write_text(intruder.public_key_pem())
    reseal_manifest(bundle)
    assert_names(verify_bundle(bundle, keys), "bad_checkpoint_signature", 0, 9, 9, 10)


def test_when_keys_are_not_pinned_then_the_report_says_so(bundle):
    report = verify_bundle(bundle)
    assert report.ok and any("pin" in note for note in report.notes)


def test_when_a_key_is_added_to_the_bundle_then_the_manifest_flags_it(bundle, keys, intruder):
    (bundle / KEYS_DIR / f"{intruder.key_id}.pem").write_text(intruder.public_key_pem())
    error = verify_bundle(bundle, keys).first_error
    assert error.kind == "manifest_mismatch" and intruder.key_id in error.detail


@pytest.mark.parametrize("edit", [
    lambda m: {**m, "counts": {**m["counts"], "entries": 31}},
    lambda m: {**m, "files": {**m["files"], AUDIT_FILE: "0" * 64}},
    lambda m: {**m, "topic": "us.audit"},
    lambda m: {key: value for key, value in m.items() if key != "format"},
])
def test_when_the_manifest_is_edited_then_it_is_a_manifest_mismatch(bundle, keys, edit):
    manifest = orjson.loads((bundle / MANIFEST_FILE).read_bytes())
    (bundle / MANIFEST_FILE).write_bytes(orjson.dumps(edit(manifest)))
    report = verify_bundle(bundle, keys)
    assert report.first_error.kind == "manifest_mismatch", report.summary()


def test_when_a_file_changes_and_the_manifest_does_not_then_the_record_comes_first(bundle, keys):
    edit_value(bundle / AUDIT_FILE, 3, lambda v: v.replace(b'"cleared"', b'"Cleared"'))
    report = verify_bundle(bundle, keys)
    assert [e.kind for e in report.errors] == ["modified", "manifest_mismatch"]


def test_when_a_line_is_not_json_then_it_is_named_by_line(bundle, keys):
    lines = read_lines(bundle / AUDIT_FILE)
    lines[4] = b'{"partition": 0, "offs\n'
    write_lines(bundle / AUDIT_FILE, lines)
    error = verify_bundle(bundle, keys).first_error
    assert (error.kind, error.file, error.line) == ("unparseable", AUDIT_FILE, 5)


def test_when_a_value_is_not_base64_then_it_is_unparseable_at_its_offset(bundle, keys):
    lines = read_lines(bundle / AUDIT_FILE)
    lines[4] = b'{"offset":4,"partition":0,"value":"***"}\n'
    write_lines(bundle / AUDIT_FILE, lines)
    assert_names(verify_bundle(bundle, keys), "unparseable", 0, 4, None, 5)


def test_when_the_bundle_directory_is_not_empty_then_export_refuses(bundle, signer):
    with pytest.raises(FileExistsError):
        export_bundle([], [], [signer.public_key_pem()], bundle)


def test_when_the_same_trail_is_exported_twice_then_the_bundles_are_identical(tmp_path, signer):
    trail = sample_trail(signer)
    for name in ("a", "b"):
        export_bundle(trail.records, trail.checkpoints, [signer.public_key_pem()], tmp_path / name)
    for name in (AUDIT_FILE, CHECKPOINTS_FILE, MANIFEST_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_when_an_unpinned_bundle_carries_the_forgers_key_then_the_checkpoint_copy_disagrees(
    bundle, intruder
):
    before = base64.b64decode(orjson.loads(read_lines(bundle / AUDIT_FILE)[8])["value"])
    writer = ChainWriter.resume("eu.audit", 0, before)
    edit_value(bundle / AUDIT_FILE, 10, lambda _: writer.checkpoint(intruder, SAMPLE_START))
    (bundle / KEYS_DIR / f"{intruder.key_id}.pem").write_text(intruder.public_key_pem())
    reseal_manifest(bundle)
    assert_names(verify_bundle(bundle), "checkpoint_mismatch", 0, 9, 9, 10)
