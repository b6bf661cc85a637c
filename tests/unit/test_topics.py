"""The partition of a key, as Kafka's default partitioner picks it (pipeline.topics.key_partition)."""

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference
from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

from pipeline import topics
from pipeline.topics import key_partition, murmur2, murmur2_python


@settings(max_examples=2000)
@given(st.binary(max_size=400))
def test_murmur2_is_kafkas(data: bytes) -> None:
    assert murmur2(data) == reference(data)
    assert murmur2_python(data) == reference(data)


def test_every_tail_length_and_long_keys() -> None:
    for n in (*range(40), 255, 256, 257, 258, 259, 4096):
        data = bytes((i * 131 + 7) % 256 for i in range(n))
        assert murmur2(data) == reference(data), n
        assert murmur2_python(data) == reference(data), n


def test_the_compiled_hash_is_the_one_in_use() -> None:
    # a dependency (pyproject.toml); without it every key would cost the Python loop
    assert topics._compiled is not None


def test_without_the_compiled_hash_the_python_one_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(topics, "_compiled", None)
    assert [murmur2(key) for key in (b"", b"abc", b"payments-00000001")] == \
        [reference(key) for key in (b"", b"abc", b"payments-00000001")]


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=64))
def test_key_partition_is_the_default_partitioners(key: bytes, partitions: int) -> None:
    every = list(range(partitions))
    assert key_partition(key, partitions) == DefaultPartitioner()(key, every, every)


def test_javas_partitions() -> None:
    # Partitions of 1,000 that Kafka's Java client picks (pinned by kafka-python's test suite).
    expected = {b"": 681, b"a": 524, b"ab": 434, b"abc": 107, b"123456789": 566, b"\x00 ": 742}
    assert {key: key_partition(key, 1000) for key in expected} == expected
