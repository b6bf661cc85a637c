"""Properties: every single-byte change, deletion and swap is detected and the right record named."""

from __future__ import annotations

import base64

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.audit.bundle import AUDIT_FILE, export_bundle, verify_bundle
from pipeline.audit.sample import sample_trail
from pipeline.audit.signing import generate_signing_key, load_signing_key
from pipeline.audit.verify import verify

SIGNER = load_signing_key(generate_signing_key())
KEYS = {SIGNER.key_id: SIGNER.public_key}
TRAIL = sample_trail(SIGNER, partitions=2, fragments=9, checkpoint_every=3)
RECORDS = TRAIL.records
PER_PARTITION = len(RECORDS) // 2
PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def check(records):
    return verify(records, TRAIL.checkpoints, KEYS)


@PROPERTY
@given(index=st.integers(0, len(RECORDS) - 1), data=st.data())
def test_when_any_single_byte_is_modified_then_that_record_is_named(index, data):
    partition, offset, value = RECORDS[index]
    position = data.draw(st.integers(0, len(value) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != value[position]))
    tampered = value[:position] + bytes([byte]) + value[position + 1:]
    records = RECORDS[:index] + [(partition, offset, tampered)] + RECORDS[index + 1:]
    error = check(records).first_error
    assert error is not None
    assert (error.partition, error.offset) == (partition, offset), error.describe()
    assert error.kind in {"modified", "unparseable", "bad_checkpoint_signature",
                          "checkpoint_mismatch"}


@PROPERTY
@given(index=st.integers(0, len(RECORDS) - 1))
def test_when_any_record_is_deleted_then_the_gap_is_named(index):
    partition, offset, _ = RECORDS[index]
    error = check(RECORDS[:index] + RECORDS[index + 1:]).first_error
    assert error is not None and error.partition == partition
    if offset == PER_PARTITION - 1:
        assert (error.kind, error.seq) == ("truncated", offset)
    else:
        assert (error.kind, error.offset) == ("missing", offset + 1), error.describe()


@PROPERTY
@given(first=st.integers(0, PER_PARTITION - 1), second=st.integers(0, PER_PARTITION - 1),
       partition=st.integers(0, 1))
def test_when_any_two_entries_are_swapped_then_the_first_is_named(first, second, partition):
    low, high = sorted((first, second))
    if low == high:
        return
    records = list(RECORDS)
    base = partition * PER_PARTITION
    i, j = base + low, base + high
    records[i] = (partition, low, RECORDS[j][2])
    records[j] = (partition, high, RECORDS[i][2])
    error = check(records).first_error
    assert error is not None
    assert (error.kind, error.partition, error.offset) == ("reordered", partition, low)


@PROPERTY
@given(i=st.integers(0, len(RECORDS) - 1), j=st.integers(0, len(RECORDS) - 1))
def test_when_records_of_any_partitions_are_swapped_then_verify_fails(i, j):
    if RECORDS[i][2] == RECORDS[j][2]:
        return
    records = list(RECORDS)
    records[i] = (*RECORDS[i][:2], RECORDS[j][2])
    records[j] = (*RECORDS[j][:2], RECORDS[i][2])
    error = check(records).first_error
    assert error is not None and (error.partition, error.offset) == min(RECORDS[i][:2],
                                                                        RECORDS[j][:2])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_when_any_byte_of_a_bundle_file_changes_then_the_bundle_fails(tmp_path_factory, data):
    directory = tmp_path_factory.mktemp("bundle")
    export_bundle(RECORDS, TRAIL.checkpoints, [SIGNER.public_key_pem()], directory)
    path = directory / AUDIT_FILE
    content = path.read_bytes()
    position = data.draw(st.integers(0, len(content) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != content[position]))
    path.write_bytes(content[:position] + bytes([byte]) + content[position + 1:])
    assert not verify_bundle(directory, KEYS).ok


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, len(RECORDS) - 1), data=st.data())
def test_when_a_bundle_value_byte_changes_then_its_line_is_named(tmp_path_factory, index, data):
    directory = tmp_path_factory.mktemp("bundle")
    export_bundle(RECORDS, TRAIL.checkpoints, [SIGNER.public_key_pem()], directory)
    path = directory / AUDIT_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    line = orjson.loads(lines[index])
    value = base64.b64decode(line["value"])
    position = data.draw(st.integers(0, len(value) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != value[position]))
    line["value"] = base64.b64encode(value[:position] + bytes([byte]) + value[position + 1:]).decode()
    lines[index] = orjson.dumps(line) + b"\n"
    path.write_bytes(b"".join(lines))
    error = verify_bundle(directory, KEYS).first_error
    assert (error.file, error.line) == (AUDIT_FILE, index + 1), error.describe()
