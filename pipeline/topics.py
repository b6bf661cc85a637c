"""Topic names and specs for one regional fleet, all derived from the policy.

Every topic carries the region as its first name segment, so ACLs by prefix keep data in-region.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import lru_cache

from schemas.policy import Policy

COMPACT = {"cleanup.policy": "compact"}
_M = 0x5BD1E995  # murmur2's mixing constant
_MASK = 0xFFFFFFFF
_WORDS = [struct.Struct(f"<{n}I") for n in range(64)]  # little-endian 32-bit words, by count


_SEED = 0x9747B28C

try:  # the same hash compiled (messense/murmurhash2, Rust): 0.5 us a key where the Python below takes 3.9
    from murmurhash2 import murmurhash2 as _compiled
except ImportError:  # a platform without its wheel: the Python one
    _compiled = None


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``), as aiokafka's pure-Python one
    computes it. The screen stage hashes each output's key and each event id for their partitions
    (~3% of the worker's main thread in Python). tests/unit/test_topics.py compares all three."""
    return _compiled(data, _SEED) if _compiled is not None else murmur2_python(data)


def murmur2_python(data: bytes) -> int:
    """:func:`murmur2` in Python, three times faster than aiokafka's: the words unpacked in one call,
    no redundant masking."""
    length = len(data)
    h = _SEED ^ length
    n = length >> 2
    words = _WORDS[n].unpack_from(data) if n < len(_WORDS) else struct.unpack_from(f"<{n}I", data)
    for k in words:
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        end = length & ~3
        if tail == 3:
            h ^= data[end + 2] << 16
        if tail >= 2:
            h ^= data[end + 1] << 8
        h = ((h ^ data[end]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


@lru_cache(maxsize=16384)
def _positive_hash(key: bytes) -> int:
    # A screen batch asks for an event id's partition of its outcome topic and of R.provenance.
    return murmur2(key) & 0x7FFFFFFF


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` among ``partitions``; an event id's
    partition of ``R.provenance`` (and of the provenance table) is ``key_partition(event_id.encode(), n)``."""
    return _positive_hash(key) % partitions


def app_id(region: str) -> str:
    """The Faust app id: it prefixes changelog topics, so they stay in the region's namespace."""
    return f"{region}.residency"


def screen_group(app: str) -> str:
    """The consumer group of the screen stage (agents/screen.py); the Faust agents use ``app`` itself."""
    return f"{app}.screen"


def egress_topic(region: str, dataset: str, profile: str, override: str | None = None) -> str:
    """An egress profile's topic: ``R.egress.<profile>.<dataset>`` unless the policy names one.

    The default keeps the fleet's region first, so ACLs by prefix still cover it; a name from the
    policy that does not start with ``R.`` stops the worker at start-up (namespace guard).
    """
    return override or f"{region}.egress.{profile}.{dataset}"


@dataclass(frozen=True)
class RegionTopics:
    region: str
    app: str | None = None  # the Faust app id when not the default <region>.residency

    def raw(self, dataset: str) -> str:
        return f"{self.region}.raw.{dataset}"

    def cleared(self, dataset: str) -> str:
        return f"{self.region}.cleared.{dataset}"

    def rejected(self, dataset: str) -> str:
        return f"{self.region}.rejected.{dataset}"

    @property
    def held(self) -> str:
        return f"{self.region}.held"

    @property
    def approvals(self) -> str:
        return f"{self.region}.approvals"

    @property
    def deadletter(self) -> str:
        return f"{self.region}.deadletter"

    @property
    def provenance(self) -> str:
        """Provenance fragments from every stage, keyed by event id; folded by the record agent."""
        return f"{self.region}.provenance"

    @property
    def intents(self) -> str:
        """Send intents of the screen agents, keyed by source partition (see pipeline.effects)."""
        return f"{self.region}.screen.intents"

    @property
    def audit(self) -> str:
        return f"{self.region}.audit"

    @property
    def audit_checkpoints(self) -> str:
        return f"{self.region}.audit.checkpoints"

    def changelog(self, table: str) -> str:
        return f"{self.app or app_id(self.region)}-{table}-changelog"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)


def _retention(ms: int) -> dict[str, str]:
    return {"retention.ms": str(ms)}


def topic_specs(policy: Policy, app: str | None = None) -> list[TopicSpec]:
    """Every topic the policy implies, with explicit partitions and configs (``app``: the app id)."""
    names = RegionTopics(policy.region, app)
    ret, topo = policy.retention, policy.topology
    rf = topo.replication_factor

    def spec(name: str, partitions: int, config: dict[str, str]) -> TopicSpec:
        return TopicSpec(name, partitions, rf, config)

    specs: list[TopicSpec] = []
    for dataset_name, dataset in sorted(policy.datasets.items()):
        n = dataset.partitions
        specs += [
            spec(names.raw(dataset_name), n, _retention(ret.raw_ms)),
            spec(names.cleared(dataset_name), n, _retention(ret.cleared_ms)),
            spec(names.rejected(dataset_name), n, _retention(ret.rejected_ms)),
        ]
        specs += [spec(egress_topic(policy.region, dataset_name, profile_name, profile.topic), n,
                       _retention(ret.cleared_ms))
                  for profile_name, profile in sorted(dataset.egress.items())]
    audit_config = {"cleanup.policy": "delete", **_retention(ret.audit_ms)}
    specs += [
        spec(names.held, topo.held_partitions, _retention(-1)),
        spec(names.approvals, topo.held_partitions, _retention(-1)),
        spec(names.deadletter, topo.held_partitions, _retention(ret.deadletter_ms)),
        spec(names.provenance, topo.audit_partitions, _retention(ret.audit_ms)),
        spec(names.audit, topo.audit_partitions, audit_config),
        spec(names.audit_checkpoints, topo.audit_partitions, audit_config),
        spec(names.changelog("provenance"), topo.audit_partitions, COMPACT),
        spec(names.intents, 1, {**COMPACT, "segment.ms": "60000", "min.cleanable.dirty.ratio": "0.01"}),
        spec(names.changelog("held"), topo.held_partitions, COMPACT),  # the decide agent's held table
    ]
    return specs
