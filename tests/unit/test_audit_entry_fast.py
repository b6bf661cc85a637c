"""The audit entry's fast paths give the model's verdicts: same bytes written, same entries read,
the same finding for every damaged value."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.audit.entry import AuditEntry, EntryError, _load_object, genesis_hash

AT = "2026-11-29T10:00:00.123456Z"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
bodies = st.dictionaries(st.text(max_size=8), json_values, max_size=5).map(lambda d: {**d, "event_id": "ev-1"})


def verdict(call):  # noqa: ANN001, ANN201
    try:
        return ("ok", call().model_dump())
    except EntryError as exc:
        return ("error", exc.kind, exc.detail, exc.seq, exc.event_id)


def slow(value: bytes):  # noqa: ANN201
    return verdict(lambda: AuditEntry._from_object(_load_object(value), value))


def fields(seq: int = 3, kind: str = "fragment", body: dict | None = None) -> dict:
    return dict(topic="eu.audit", partition=1, seq=seq, prev=genesis_hash("eu.audit", 1), at=AT, kind=kind,
                body=body if body is not None else {"event_id": "ev-1", "stage": "screen"})


@settings(max_examples=150, deadline=None)
@given(body=bodies, seq=st.integers(0, 10**6), kind=st.sampled_from(["fragment", "checkpoint"]))
def test_the_writer_fast_path_writes_what_the_model_writes(body, seq, kind):
    built = AuditEntry.build(**fields(seq, kind, body))
    content, value = AuditEntry.build_bytes(**fields(seq, kind, body))
    assert value == built.to_bytes()
    assert content == built.model_dump()
    # the writer's path (fields checked by the writer) writes the same bytes
    assert AuditEntry.build_bytes(**fields(seq, kind, body), checked=True)[1] == value


@pytest.mark.parametrize("bad", [dict(prev="not-a-hash"), dict(at="2026-11-29 10:00:00"), dict(seq=-1),
                                 dict(topic=""), dict(at=AT + "\n"), dict(kind="other")])
def test_the_writer_fast_path_refuses_what_the_model_refuses(bad):
    with pytest.raises(ValueError):
        AuditEntry.build(**{**fields(), **bad})
    with pytest.raises(ValueError):
        AuditEntry.build_bytes(**{**fields(), **bad})


@settings(max_examples=300, deadline=None)
@given(body=bodies, data=st.data())
def test_the_reader_fast_path_finds_what_the_model_finds(body, data):
    _, value = AuditEntry.build_bytes(**fields(body=body))
    assert verdict(lambda: AuditEntry.from_bytes(value)) == slow(value) == ("ok", AuditEntry.from_bytes(value).model_dump())
    # one damage per example: a byte changed, a byte dropped, or a field replaced (re-encoded canonically)
    how = data.draw(st.sampled_from(["byte", "drop", "field"]))
    if how == "byte":
        i = data.draw(st.integers(0, len(value) - 1))
        damaged = value[:i] + bytes([data.draw(st.integers(0, 255))]) + value[i + 1:]
    elif how == "drop":
        i = data.draw(st.integers(0, len(value) - 1))
        damaged = value[:i] + value[i + 1:]
    else:
        raw = orjson.loads(value)
        name = data.draw(st.sampled_from(sorted(raw) + ["extra"]))
        raw[name] = data.draw(json_values | st.just(True) | st.just(1.0) | st.just("0" * 64) | st.just(AT + "\n"))
        damaged = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    if damaged[:1] != b"{":
        return  # not an object at all: both paths share the decoding step
    try:
        _load_object(damaged)
    except EntryError:
        return
    assert verdict(lambda: AuditEntry.from_bytes(damaged)) == slow(damaged)


def test_a_changed_body_is_a_hash_mismatch_on_both_paths():
    _, value = AuditEntry.build_bytes(**fields())
    damaged = value.replace(b'"stage":"screen"', b'"stage":"screeN"')
    fast = verdict(lambda: AuditEntry.from_bytes(damaged))
    assert fast == slow(damaged)
    assert fast[:2] == ("error", "modified") and "hash" in fast[2]


@pytest.mark.parametrize("name,bad", [("at", AT + "\n"), ("at", "2026-11-29T10:00:00+00:00"), ("prev", "A" * 64),
                                      ("prev", "0" * 64 + "\n"), ("hash", "0" * 63), ("seq", True), ("seq", -1),
                                      ("partition", 1.0), ("v", 2), ("v", True), ("kind", "other"), ("body", []),
                                      ("topic", ""), ("extra", 1)])
def test_each_field_the_model_refuses_is_refused_alike(name, bad):
    _, value = AuditEntry.build_bytes(**fields())
    raw = orjson.loads(value)
    raw[name] = bad
    damaged = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    fast = verdict(lambda: AuditEntry.from_bytes(damaged))
    assert fast == slow(damaged)
    assert fast[0] == "error"
