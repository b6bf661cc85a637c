"""A policy compiled once into per-dataset plans that ``screen`` runs on every record."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pipeline.keys import KeyRing
from pipeline.masking import Strategy, build_strategy
from pipeline.paths import FieldPath, compile_path, format_path
from pipeline.policy import LoadedPolicy
from pipeline.rules import Contract
from pipeline.topics import RegionTopics, egress_topic
from schemas.decision import MaskApplied
from schemas.policy import Dataset, MaskRule

# Dot-separated names without brackets, wildcards, quotes or whitespace (see pipeline.paths).
_PLAIN_KEYS = re.compile(r"[^.\[\]*\"'\s]+(?:\.[^.\[\]*\"'\s]+)*")


@dataclass(frozen=True)
class CompiledMask:
    path: FieldPath
    strategy: Strategy
    # For a path of plain object keys (``card.number``), the keys and the concrete path it names,
    # so screening reaches the one value it can match without the general path matcher.
    keys: tuple[str, ...] | None = field(init=False, default=None)
    concrete: str = field(init=False, default="")
    # What screening records for that value (frozen, so one instance serves every record).
    applied: MaskApplied | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if _PLAIN_KEYS.fullmatch(self.path.expr):
            keys = tuple(self.path.expr.split("."))
            object.__setattr__(self, "keys", keys)
            object.__setattr__(self, "concrete", format_path(keys))
            object.__setattr__(self, "applied", MaskApplied(self.concrete, self.strategy.name, self.strategy.key_id))

    @property
    def strategy_name(self) -> str:
        return self.strategy.name


@dataclass(frozen=True)
class EgressPlan:
    """One egress profile: the dataset's cleared record, masked further, to its own topic."""

    name: str
    region: str
    topic: str
    masks: tuple[CompiledMask, ...]
    key_mask: Strategy | None


@dataclass(frozen=True)
class DatasetPlan:
    name: str
    region: str
    policy_hash: str
    rules: Dataset
    masks: tuple[CompiledMask, ...]
    key_mask: Strategy | None
    raw_topic: str
    cleared_topic: str
    rejected_topic: str
    held_topic: str
    deadletter_topic: str
    egress: tuple[EgressPlan, ...] = ()
    identity: Any = None  # pipeline.producer_identity.ProducerCheck, when producer identity is configured
    attestor: Any = None  # pipeline.attestation.Attestor, signs cleared and egress records
    contract: Contract | None = None  # rules.schema_ compiled, when the dataset has one


def _masks(rules: list[MaskRule], keys: KeyRing) -> tuple[CompiledMask, ...]:
    return tuple(CompiledMask(compile_path(r.path), build_strategy(r.strategy, r.params, keys)) for r in rules)


def compile_plans(loaded: LoadedPolicy, keys: KeyRing, identity: Any = None,
                  attestor: Any = None) -> dict[str, DatasetPlan]:
    """One plan per dataset; raises when a key the policy names is missing from ``keys``.

    ``identity`` (a ProducerCheck) and ``attestor`` are the worker's start-up material; without
    ``identity`` a dataset that requires producer identity rejects every record (fail closed).
    """
    policy = loaded.policy
    names = RegionTopics(policy.region)
    plans: dict[str, DatasetPlan] = {}
    for name, dataset in policy.datasets.items():
        masks = _masks(dataset.masking, keys)
        key_rule = dataset.key_masking
        key_mask = build_strategy(key_rule.strategy, key_rule.params, keys) if key_rule else None
        egress = tuple(
            EgressPlan(profile_name, profile.region, egress_topic(policy.region, name, profile_name, profile.topic),
                       _masks(profile.masking, keys),
                       build_strategy(profile.key_masking.strategy, profile.key_masking.params, keys)
                       if profile.key_masking else None)
            for profile_name, profile in sorted(dataset.egress.items())
        )
        plans[name] = DatasetPlan(
            name=name,
            region=policy.region,
            policy_hash=loaded.hash,
            rules=dataset,
            masks=masks,
            key_mask=key_mask,
            raw_topic=names.raw(name),
            cleared_topic=names.cleared(name),
            rejected_topic=names.rejected(name),
            held_topic=names.held,
            deadletter_topic=names.deadletter,
            egress=egress,
            identity=identity,
            attestor=attestor,
            contract=Contract(dataset.schema_) if dataset.schema_ is not None else None,
        )
    return plans
