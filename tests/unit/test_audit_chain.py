"""The chain writer: canonical bytes, links, resume after a crash, checkpoints due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.audit.chain import ChainResumeError, ChainWriter
from pipeline.audit.entry import AuditEntry, canonical, genesis_hash
from pipeline.audit.signing import generate_signing_key, load_signing_key
from pipeline.audit.verify import verify

TOPIC = "eu.audit"
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def signer():
    return load_signing_key(generate_signing_key())


def keys_of(signer):
    return {signer.key_id: signer.public_key}


def fragment(event_id: str, stage: str = "screen") -> dict:
    return {"event_id": event_id, "stage": stage, "at": "2024-03-01T12:00:00Z",
            "policy_hash": "a" * 64, "decision": "cleared"}


def write(writer: ChainWriter, records: list, value: bytes) -> None:
    """What the record agent does once the broker acknowledged ``value``."""
    records.append((writer.partition, len(records), value))


def test_when_keys_are_given_in_any_order_then_canonical_bytes_are_the_same():
    assert canonical({"b": 1, "a": {"d": 2, "c": 3}}) == canonical({"a": {"c": 3, "d": 2}, "b": 1})
    assert canonical({"b": 1, "a": 2}) == b'{"a":2,"b":1}'


def test_when_topic_or_partition_differs_then_the_genesis_differs():
    assert len({genesis_hash("eu.audit", 0), genesis_hash("eu.audit", 1),
                genesis_hash("us.audit", 0)}) == 3


def test_when_entries_are_appended_then_each_links_to_the_previous_hash():
    writer = ChainWriter(TOPIC, 0, None)
    first = AuditEntry.from_bytes(writer.append(fragment("e1"), T0))
    second = AuditEntry.from_bytes(writer.append(fragment("e2"), T0 + timedelta(seconds=1)))
    assert (first.seq, first.prev) == (0, genesis_hash(TOPIC, 0))
    assert (second.seq, second.prev) == (1, first.hash)
    assert first.at == "2024-03-01T12:00:00.000000Z"
    assert writer.head == second


def test_when_a_checkpoint_is_appended_then_it_signs_the_head_before_it(signer):
    writer = ChainWriter(TOPIC, 2, None)
    last = AuditEntry.from_bytes(writer.append(fragment("e1"), T0))
    entry = AuditEntry.from_bytes(writer.checkpoint(signer, T0))
    assert entry.kind == "checkpoint"
    assert entry.body["head"] == last.hash == entry.prev
    assert (entry.body["seq"], entry.body["count"], entry.body["key_id"]) == (0, 1, signer.key_id)


def test_when_the_writer_is_rebuilt_from_the_last_record_after_a_crash_then_the_chain_is_valid(signer):
    records: list = []
    writer = ChainWriter(TOPIC, 0, None)
    for index in range(5):
        write(writer, records, writer.append(fragment(f"e{index}"), T0))
    writer.append(fragment("lost-in-flight"), T0)  # kill -9 before the broker acknowledged it
    resumed = ChainWriter.resume(TOPIC, 0, records[-1][2])
    assert resumed.next_seq == 5
    for index in range(5, 8):
        write(resumed, records, resumed.append(fragment(f"e{index}"), T0))
    write(resumed, records, resumed.checkpoint(signer, T0))
    report = verify(records, [], keys_of(signer))
    assert report.ok, report.summary()
    assert report.counts.fragments == 8


def test_when_a_fragment_is_appended_twice_after_reprocessing_then_the_chain_is_still_valid(signer):
    records: list = []
    writer = ChainWriter(TOPIC, 0, None)
    write(writer, records, writer.append(fragment("e1"), T0))
    writer = ChainWriter.resume(TOPIC, 0, records[-1][2])
    write(writer, records, writer.append(fragment("e1"), T0))  # at-least-once redelivery
    report = verify(records, [], keys_of(signer))
    assert report.ok
    assert (report.counts.fragments, report.counts.event_ids) == (2, 1)


def test_when_the_partition_is_empty_then_resume_starts_at_genesis():
    writer = ChainWriter.resume(TOPIC, 3, None)
    assert (writer.next_seq, writer.head_hash) == (0, genesis_hash(TOPIC, 3))


@pytest.mark.parametrize("last_record", [b"not json", b'{"seq": 1}'])
def test_when_the_last_record_is_not_an_entry_then_resume_refuses(last_record):
    with pytest.raises(ChainResumeError):
        ChainWriter.resume(TOPIC, 0, last_record)


def test_when_the_last_record_belongs_to_another_partition_then_resume_refuses():
    value = ChainWriter(TOPIC, 1, None).append(fragment("e1"), T0)
    with pytest.raises(ChainResumeError):
        ChainWriter.resume(TOPIC, 0, value)


def test_when_the_last_record_was_tampered_then_resume_refuses():
    value = ChainWriter(TOPIC, 0, None).append(fragment("e1"), T0)
    with pytest.raises(ChainResumeError):
        ChainWriter.resume(TOPIC, 0, value.replace(b"screen", b"screan"))


@pytest.mark.parametrize("body", [{}, {"event_id": 7}, {"stage": "screen"}])
def test_when_a_fragment_has_no_string_event_id_then_append_refuses(body):
    with pytest.raises(ValueError):
        ChainWriter(TOPIC, 0, None).append(body, T0)


def test_when_the_timestamp_is_naive_then_append_refuses():
    with pytest.raises(ValueError):
        ChainWriter(TOPIC, 0, None).append(fragment("e1"), datetime(2024, 1, 1))


def test_when_n_entries_or_t_seconds_have_passed_then_a_checkpoint_is_due(signer):
    writer = ChainWriter(TOPIC, 0, None)
    due = lambda now: writer.checkpoint_due(now, every_entries=3, every_seconds=60)  # noqa: E731
    assert not due(T0)  # nothing to cover
    writer.append(fragment("e1"), T0)
    assert due(T0)  # first checkpoint of a fresh or resumed writer comes at once
    writer.checkpoint(signer, T0)
    writer.append(fragment("e2"), T0)
    assert not due(T0 + timedelta(seconds=59))
    assert due(T0 + timedelta(seconds=60))
    writer.append(fragment("e3"), T0)
    writer.append(fragment("e4"), T0)
    assert due(T0 + timedelta(seconds=1))


def test_when_resumed_from_a_checkpoint_then_no_checkpoint_is_due_yet(signer):
    writer = ChainWriter(TOPIC, 0, None)
    writer.append(fragment("e1"), T0)
    resumed = ChainWriter.resume(TOPIC, 0, writer.checkpoint(signer, T0))
    assert not resumed.checkpoint_due(T0, every_entries=1, every_seconds=1)
