"""``RESIDENCY_COMPRESSION``: the worker's producer compresses the batches it builds (the batch API
``pipeline.sender`` uses), and a record compressed by a producer reads back as it was sent."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiokafka.record.default_records import DefaultRecordBatch
from pydantic import ValidationError

from pipeline.app import create_app
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
