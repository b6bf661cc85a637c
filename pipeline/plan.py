"""A policy compiled once into per-dataset plans that ``screen`` runs on every record."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.keys import KeyRing
from pipeline.masking import Strategy, build_strategy
from pipeline.paths import FieldPath, compile_path
from pipeline.policy import LoadedPolicy
from pipeline.topics import RegionTopics
from schemas.policy import Dataset


@dataclass(frozen=True)
class CompiledMask:
    path: FieldPath
    strategy: Strategy

    @property
    def strategy_name(self) -> str:
        return self.strategy.name


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


def compile_plans(loaded: LoadedPolicy, keys: KeyRing) -> dict[str, DatasetPlan]:
    """One plan per dataset; raises when a key the policy names is missing from ``keys``."""
    policy = loaded.policy
    names = RegionTopics(policy.region)
    plans: dict[str, DatasetPlan] = {}
    for name, dataset in policy.datasets.items():
        masks = tuple(
            CompiledMask(compile_path(rule.path), build_strategy(rule.strategy, rule.params, keys))
            for rule in dataset.masking
        )
        key_rule = dataset.key_masking
        key_mask = build_strategy(key_rule.strategy, key_rule.params, keys) if key_rule else None
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
        )
    return plans
