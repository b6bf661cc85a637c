"""``RESIDENCY_COMPRESSION``: the worker's producer compresses the batches it builds (the batch API
``pipeline.sender`` uses), and a record compressed by a producer reads back as it was sent."""

from __future__ import annotations

import asyncio

import cramjam
import orjson
import pytest
from aiokafka.record.default_records import DefaultRecordBatch
from pydantic import ValidationError

from pipeline.app import create_app
from pipeline.compression import use_level
from pipeline.settings import Settings

CODECS = {"none": DefaultRecordBatch.CODEC_NONE, "gzip": DefaultRecordBatch.CODEC_GZIP,
          "snappy": DefaultRecordBatch.CODEC_SNAPPY, "lz4": DefaultRecordBatch.CODEC_LZ4,
          "zstd": DefaultRecordBatch.CODEC_ZSTD}


def _fragment(i: int) -> bytes:
    return orjson.dumps({"event_id": f"payments-{i:08d}", "stage": "screen", "region": "eu", "dataset": "payments",
                         "decision": "cleared", "reason": "cleared", "findings": [{"type": "card", "path": "note"}],
                         "raw_sha256": f"{i:064x}", "source": {"topic": "eu.raw.payments", "partition": 0, "offset": i}})


def _built_batch(settings: Settings, values: list[bytes]) -> bytes:
    """A batch as the worker's producer (Faust's, built from the app's settings) frames it."""
    async def build() -> bytes:
        app = create_app(settings, "eu")
        producer = app.producer._new_producer()  # noqa: SLF001 - the aiokafka producer Faust would start
        batch = producer.create_batch()
        for i, value in enumerate(values):
            assert batch.append(key=str(i).encode(), value=value, timestamp=None) is not None
        batch.close()
        return bytes(batch._builder.build())  # noqa: SLF001 - the bytes that go on the wire
    return asyncio.run(build())


def test_the_default_is_zstd():
    assert Settings().compression == "zstd"


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_when_a_codec_is_set_then_the_workers_batches_carry_it_and_read_back_unchanged(codec):
    values = [_fragment(i) for i in range(200)]
    wire = _built_batch(Settings(compression=codec), values)

    batch = DefaultRecordBatch(wire)
    assert batch.compression_type == CODECS[codec]
    assert [bytes(record.value) for record in batch] == values
    if codec != "none":
        assert len(wire) * 3 < sum(map(len, values)), "a batch of JSON fragments compresses at least 3x"


def test_when_an_unknown_codec_is_set_then_the_settings_refuse_it(monkeypatch):
    monkeypatch.setenv("RESIDENCY_COMPRESSION", "brotli")
    with pytest.raises(ValidationError, match="compression"):
        Settings()


HEADER = 61  # bytes of a v2 record batch header (Kafka's RECORD_BATCH_OVERHEAD); the records follow


def _records_section(wire: bytes) -> tuple[bytes, bytes]:
    """(compressed, plain) records of a zstd or lz4 batch the worker's producer built."""
    compressed = wire[HEADER:]
    plain = cramjam.zstd.decompress(compressed) if DefaultRecordBatch(wire).compression_type == CODECS["zstd"] \
        else cramjam.lz4.decompress(compressed)
    return compressed, bytes(plain)


def _lz4(data: bytes, level: int) -> bytes:
    compressor = cramjam.lz4.Compressor(level=level, content_checksum=False, block_linked=False)
    compressor.compress(data)
    return bytes(compressor.finish())


@pytest.mark.parametrize(("codec", "level", "expected"), [
    ("zstd", None, 1), ("zstd", 3, 3), ("zstd", -5, -5), ("lz4", None, 9), ("lz4", 1, 1)])
def test_when_a_level_is_set_or_not_then_the_batch_is_compressed_at_that_level(codec, level, expected):
    values = [_fragment(i) for i in range(300)]
    compressed, plain = _records_section(_built_batch(Settings(compression=codec, compression_level=level), values))

    at_level = bytes(cramjam.zstd.compress(plain, level=expected)) if codec == "zstd" else _lz4(plain, expected)
    assert compressed == at_level
    others = [n for n in (1, 3, 9) if n != expected]
    for other in others:  # the comparison can tell levels apart on this data
        assert (bytes(cramjam.zstd.compress(plain, level=other)) if codec == "zstd" else _lz4(plain, other)) != compressed


def test_when_gzip_has_a_level_then_its_batches_read_back_unchanged():
    values = [_fragment(i) for i in range(200)]
    fast, best = (_built_batch(Settings(compression="gzip", compression_level=n), values) for n in (1, 9))
    for wire in (fast, best):
        assert [bytes(record.value) for record in DefaultRecordBatch(wire)] == values
    assert len(best) < len(fast), "level 9 compresses these fragments smaller than level 1"


@pytest.mark.parametrize(("codec", "level"), [("zstd", 23), ("lz4", 0), ("lz4", 18), ("gzip", 0), ("gzip", 10),
                                              ("snappy", 1), ("none", 1)])
def test_when_the_level_does_not_fit_the_codec_then_the_settings_refuse_it(codec, level):
    with pytest.raises(ValidationError, match="compression_level"):
        Settings(compression=codec, compression_level=level)


def test_a_codec_without_levels_changes_nothing():
    assert use_level("snappy") is None and use_level("none") is None
    with pytest.raises(ValueError, match="from 1 to 9"):
        use_level("gzip", 11)
