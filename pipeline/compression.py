"""The level the worker's producer compresses at (``RESIDENCY_COMPRESSION_LEVEL``).

aiokafka has no setting for it (Kafka's own producer has ``compression.<codec>.level``, KIP-390):
it compresses zstd at 3, lz4 at 9 and gzip at 9, with the encoder functions its record-batch
builders (the Cython one and the pure-Python one) look up as module globals when a batch is closed.
:func:`use_level` puts in their place the same encoders with the level given, for every producer of
the process (a worker has one: Faust's, which also sends through ``pipeline.sender``).

On the worker's own outputs (cleared records, provenance, its table's changelog, audit), zstd at 1
wrote a smaller batch than at 3 (10.3x against 9.2x) in 44% less CPU (1.8x faster), and compression was ~5% of
the worker's main thread at 3 (docs/benchmarks.md, session 17). Only the sender's cost changes: a
consumer decompresses any level the same way.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any, NamedTuple


class Levels(NamedTuple):
    encoder: str  # aiokafka's encoder function
    keyword: str  # its level argument
    low: int
    high: int
    default: int  # residency's


CODECS: dict[str, Levels] = {
    "zstd": Levels("zstd_encode", "level", -131072, 22, 1),  # Kafka's range; its default is 3
    "lz4": Levels("lz4_encode", "level", 1, 17, 9),  # Kafka's default and aiokafka's
    "gzip": Levels("gzip_encode", "compresslevel", 1, 9, 6),  # Kafka's default (aiokafka's is 9)
}
_BUILDERS = ("aiokafka.record.default_records", "aiokafka.record._crecords.default_records")
_ORIGINAL: dict[tuple[str, str], Callable[..., bytes]] = {}  # (module, encoder) -> aiokafka's own


def default_level(codec: str) -> int | None:
    """The level residency compresses ``codec`` at unless told otherwise (None: it has no levels)."""
    return CODECS[codec].default if codec in CODECS else None


def level_problem(codec: str, level: int) -> str | None:
    """Why ``level`` cannot be used with ``codec`` (None: it can)."""
    if codec not in CODECS:
        return f"{codec} has no compression levels"
    levels = CODECS[codec]
    if not levels.low <= level <= levels.high:
        return f"{codec} levels run from {levels.low} to {levels.high}"
    return None


def use_level(codec: str, level: int | None = None) -> int | None:
    """Make this process's Kafka producers compress ``codec`` at ``level`` (its default when None);
    returns the level used (None for a codec without levels: nothing changes)."""
    if codec not in CODECS:
        return None
    chosen = default_level(codec) if level is None else level
    problem = level_problem(codec, chosen)
    if problem:
        raise ValueError(problem)
    encoder, keyword = CODECS[codec].encoder, CODECS[codec].keyword
    for name in _BUILDERS:
        try:
            module: Any = importlib.import_module(name)
        except ImportError:  # aiokafka built without its C extensions
            continue
        original = _ORIGINAL.setdefault((name, encoder), getattr(module, encoder, None))
        if original is None:
            raise RuntimeError(f"this aiokafka has no {encoder} in {name}: the compression level cannot be set")
        setattr(module, encoder, functools.partial(original, **{keyword: chosen}))
    return chosen
