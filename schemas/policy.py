"""The policy file: one YAML document per regional fleet, validated here.

Every model forbids unknown fields, so a typo in the policy is an error at load time rather than a
setting that silently does nothing. Masking strategy parameters are checked against the strategy's
own typed model (``pipeline.masking``); an unknown strategy is an error, never a default.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME = r"^[a-z][a-z0-9_-]{0,62}$"
REGION = r"^[a-z][a-z0-9-]{0,30}$"
JURISDICTION = r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$"
KAFKA_PRINCIPAL = r"^User:[A-Za-z0-9][A-Za-z0-9_.@=,+-]{0,127}$"
RACK = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OnPII(StrEnum):
    """What a detector finding in a field the policy does not list does to the record."""

    MASK = "mask"
    HOLD = "hold"
    REJECT = "reject"


class OnViolation(StrEnum):
    REJECT = "reject"
    HOLD = "hold"


class MaskRule(Strict):
    """Mask the values at ``path`` with ``strategy`` (parameters checked by the strategy's model)."""

    path: str = Field(min_length=1)
    strategy: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _strategy_and_params_are_known(self) -> MaskRule:
        from pipeline.masking import params_model, strategy_names
        from pipeline.paths import compile_path

        compile_path(self.path)
        if self.strategy not in strategy_names():
            raise ValueError(
                f"unknown masking strategy {self.strategy!r}; expected one of {sorted(strategy_names())}"
            )
        params_model(self.strategy).model_validate(self.params)
        return self


FieldType = Literal["string", "number", "integer", "boolean", "object", "array", "null"]


class RecordSchema(Strict):
    """A light record contract: required paths and the JSON type at each typed path."""

    required: list[str] = Field(default_factory=list)
    types: dict[str, FieldType] = Field(default_factory=dict)


Op = Literal["==", "!=", ">", ">=", "<", "<=", "in", "not_in", "exists", "missing"]


class Condition(Strict):
    field: str = Field(min_length=1)
    op: Op
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs a list value")
        if self.op in (">", ">=", "<", "<=") and not isinstance(self.value, int | float):
            raise ValueError(f"op {self.op!r} needs a number value")
        return self


class HoldRule(Strict):
    """Hold a record for a human decision when every condition in ``when`` holds."""

    name: str = Field(pattern=NAME)
    when: list[Condition] = Field(min_length=1)


class ResidencyRule(Strict):
    """Which field names the data subject's jurisdiction and which jurisdictions may clear here.

    A missing or non-string field is a violation, never a pass.
    """

    field: str = Field(min_length=1)
    allowed: list[Annotated[str, Field(pattern=JURISDICTION)]] = Field(min_length=1)
    on_violation: OnViolation = OnViolation.REJECT


class Approval(Strict):
    """Who may release or reject a held record, and for how long it waits."""

    groups: list[str] = Field(min_length=1, description="approver groups (from the token's groups claim)")
    mode: Literal["any", "all"] = Field(default="any", description="any-of the groups, or one approver from each")
    required_approvals: int = Field(default=1, ge=1, le=10, description="distinct approvers needed")
    ttl_seconds: int = Field(default=86_400, ge=60, le=30 * 86_400, description="a hold older than this expires")
    require_justification: bool = True


class Producers(Strict):
    """Who may produce a dataset: verified principals (token ``sub`` or service account subject) and
    groups (token ``groups`` claim or service account groups); ``kafka_users`` are the Kafka principals
    that ``residency acls`` lets write ``R.raw.D`` (default: ``User:<principal>`` for each principal
    and the principals ``kafka_principals.producer_groups`` lists for each group)."""

    principals: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    kafka_users: list[Annotated[str, Field(pattern=KAFKA_PRINCIPAL)]] | None = None

    @model_validator(mode="after")
    def _someone_may_produce(self) -> Producers:
        if not self.principals and not self.groups:
            raise ValueError("list at least one of 'principals' or 'groups' that may produce this dataset")
        return self

    def allows(self, subject: str, groups: tuple[str, ...]) -> bool:
        return subject in self.principals or any(g in self.groups for g in groups)

    def kafka_principals(self, group_members: dict[str, list[str]]) -> list[str]:
        """The Kafka principals that may write ``R.raw.D``; a group missing from ``group_members`` is skipped
        (see :meth:`unmapped_groups`): Kafka ACLs know no groups."""
        if self.kafka_users is not None:
            return list(self.kafka_users)
        return [f"User:{p}" for p in self.principals] + [m for g in self.groups for m in group_members.get(g, [])]

    def unmapped_groups(self, group_members: dict[str, list[str]]) -> list[str]:
        """Groups whose members have no Kafka principal, so no ACL could let them write."""
        return [] if self.kafka_users is not None else [g for g in self.groups if g not in group_members]


class EgressProfile(Strict):
    """A named egress: cleared records, masked further by ``masking``, to their own topic for ``region``."""

    region: str = Field(pattern=REGION, description="destination region; must be in the policy's egress_regions")
    masking: list[MaskRule] = Field(default_factory=list, description="applied on top of the dataset masking")
    key_masking: MaskRule | None = None
    topic: str | None = Field(default=None, description="default R.egress.<profile>.<dataset>")
    consumers: list[Annotated[str, Field(pattern=KAFKA_PRINCIPAL)]] = Field(default_factory=list)


class Dataset(Strict):
    partitions: int = Field(ge=1, le=1024)
    identity: Literal["required", "off"] = Field(
        default="required", description="producer identity per record; 'off' for trials only")
    producers: Producers | None = None
    consumers: list[Annotated[str, Field(pattern=KAFKA_PRINCIPAL)]] = Field(
        default_factory=list, description="Kafka principals that may read R.cleared.D")
    egress: dict[Annotated[str, Field(pattern=NAME)], EgressProfile] = Field(default_factory=dict)
    key_field: str | None = None
    schema_: RecordSchema | None = Field(default=None, alias="schema")
    masking: list[MaskRule] = Field(default_factory=list)
    key_masking: MaskRule | None = None
    scan_unlisted: bool = True
    unexpected_pii: OnPII = OnPII.MASK
    hold: list[HoldRule] = Field(default_factory=list)
    residency: ResidencyRule | None = None
    approval: Approval | None = None
    max_record_bytes: int = Field(default=1_048_576, ge=1024, le=16 * 1_048_576)
    detection_budget_ms: float = Field(default=250.0, gt=0, le=10_000)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _holds_have_approvers(self) -> Dataset:
        holds = bool(self.hold) or self.unexpected_pii is OnPII.HOLD or (
            self.residency is not None and self.residency.on_violation is OnViolation.HOLD)
        if holds and self.approval is None:
            raise ValueError("this dataset can hold records, so it needs an 'approval' section "
                             "(groups, ttl_seconds...) saying who may release them")
        return self

    @field_validator("identity", mode="before")
    @classmethod
    def _yaml_off_is_off(cls, value: object) -> object:
        # YAML 1.1 reads a bare `off` as false and `on` as true.
        return {False: "off", True: "required"}.get(value, value) if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _identity_has_producers(self) -> Dataset:
        if self.identity == "required" and self.producers is None:
            raise ValueError("this dataset requires producer identity, so it needs a 'producers' section "
                             "(principals and/or groups allowed to write it); 'identity: off' only for trials")
        return self

    @field_validator("masking")
    @classmethod
    def _paths_are_unique(cls, rules: list[MaskRule]) -> list[MaskRule]:
        seen: set[str] = set()
        for rule in rules:
            if rule.path in seen:
                raise ValueError(f"path {rule.path!r} is masked twice")
            seen.add(rule.path)
        return rules


class KeyRef(Strict):
    """A key the policy uses, by id; the secret comes from settings, never from this file."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    purpose: str = ""


class Retention(Strict):
    raw_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=-1)
    cleared_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=-1)
    rejected_ms: int = Field(default=30 * 24 * 3600 * 1000, ge=-1)
    deadletter_ms: int = Field(default=30 * 24 * 3600 * 1000, ge=-1)
    audit_ms: int = Field(default=-1, ge=-1, description="-1 keeps the audit trail forever")


class Topology(Strict):
    """Partition counts of the region-wide topics."""

    held_partitions: int = Field(default=3, ge=1, le=1024)
    audit_partitions: int = Field(default=3, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1, le=7)


class ServiceAccount(Strict):
    """A producer that signs records with HMAC-SHA256 instead of a token; its secret comes from
    settings (``RESIDENCY_PRODUCER_KEYS`` / ``RESIDENCY_PRODUCER_KEYS_FILE``) under ``key``."""

    key: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    subject: str = Field(min_length=1, max_length=256)
    groups: list[str] = Field(default_factory=list)


class KafkaPrincipals(Strict):
    """Kafka principals for ``residency acls``: the fleet's own, and those of producer groups.

    Kafka ACLs have no groups, so a producer group (a token's ``groups`` claim) is mapped here to the
    Kafka principals its members connect as.
    """

    worker: str | None = Field(default=None, pattern=KAFKA_PRINCIPAL, description="default User:<region>-residency")
    approvers: list[Annotated[str, Field(pattern=KAFKA_PRINCIPAL)]] = Field(default_factory=list)
    producer_groups: dict[Annotated[str, Field(min_length=1)],
                          Annotated[list[Annotated[str, Field(pattern=KAFKA_PRINCIPAL)]], Field(min_length=1)]] = Field(
        default_factory=dict, description="producer group -> the Kafka principals its members connect as")


class Policy(Strict):
    version: Literal[1] = 1
    region: str = Field(pattern=REGION)
    egress_regions: list[Annotated[str, Field(pattern=REGION)]] = Field(default_factory=list)
    jurisdictions: list[Annotated[str, Field(pattern=JURISDICTION)]] | None = Field(
        default=None, description="jurisdictions this fleet may clear; every residency rule stays within them")
    racks: list[Annotated[str, Field(pattern=RACK)]] = Field(
        default_factory=list, description="broker racks allowed to hold this region's data; empty: not checked")
    service_accounts: list[ServiceAccount] = Field(default_factory=list)
    kafka_principals: KafkaPrincipals = Field(default_factory=KafkaPrincipals)
    keys: list[KeyRef] = Field(default_factory=list)
    topology: Topology = Field(default_factory=Topology)
    retention: Retention = Field(default_factory=Retention)
    datasets: dict[Annotated[str, Field(pattern=NAME)], Dataset] = Field(min_length=1)

    @model_validator(mode="after")
    def _egress_and_jurisdictions_are_allowed(self) -> Policy:
        for name, dataset in self.datasets.items():
            for profile_name, profile in dataset.egress.items():
                if profile.region not in self.egress_regions:
                    raise ValueError(
                        f"datasets.{name}.egress.{profile_name}.region: egress profile {profile_name!r} sends to "
                        f"region {profile.region!r}, which is not in egress_regions {self.egress_regions}")
            if self.jurisdictions is not None and dataset.residency is not None:
                extra = sorted(set(dataset.residency.allowed) - set(self.jurisdictions))
                if extra:
                    raise ValueError(f"datasets.{name}.residency.allowed: names {extra}, which this fleet may "
                                     f"not clear (jurisdictions: {self.jurisdictions})")
        keys = [a.key for a in self.service_accounts]
        if len(keys) != len(set(keys)):
            raise ValueError("service_accounts: each key id may be used by one service account only")
        return self

    def unmapped_producer_groups(self) -> list[str]:
        """``datasets.D.producers.groups[i]: 'group'`` for every producer group ``residency acls`` cannot map."""
        members = self.kafka_principals.producer_groups
        return [f"datasets.{name}.producers.groups[{dataset.producers.groups.index(group)}]: {group!r}"
                for name, dataset in sorted(self.datasets.items()) if dataset.producers is not None
                for group in dataset.producers.unmapped_groups(members)]

    def identity_off(self) -> list[str]:
        """Datasets whose producer identity is switched off (trials): ``policy check`` warns about them."""
        return sorted(name for name, d in self.datasets.items() if d.identity == "off")

    @model_validator(mode="after")
    def _keys_are_declared(self) -> Policy:
        declared = {k.id for k in self.keys}
        for name, dataset in self.datasets.items():
            rules = [*dataset.masking, *([dataset.key_masking] if dataset.key_masking else [])]
            for profile in dataset.egress.values():
                rules += [*profile.masking, *([profile.key_masking] if profile.key_masking else [])]
            for rule in rules:
                key_id = rule.params.get("key")
                if key_id is not None and key_id not in declared:
                    raise ValueError(
                        f"dataset {name!r}: path {rule.path!r} uses key {key_id!r}, "
                        f"which is not declared under 'keys'"
                    )
        return self
