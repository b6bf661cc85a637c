"""The Kafka ACLs that make the topology the only path, derived from the policy.

Producers write only ``R.raw.D``; consumers read only ``R.cleared.D`` and their egress profiles'
topics (with consumer groups under ``R.consumer.``); approvers write only ``R.approvals``; the workers
read and write the region's topics (``R.`` prefix), use their group and transactional ids (the app id)
and may write idempotently. Rendered as ``kafka-acls`` commands and as Strimzi ``KafkaUser`` resources.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from pipeline.topics import RegionTopics, app_id, egress_topic, screen_group
from schemas.policy import Policy


@dataclass(frozen=True, order=True)
class Acl:
    principal: str  # "User:name"
    resource: str  # topic, group, cluster, transactional-id
    name: str  # "" for the cluster
    pattern: str  # literal or prefixed
    operation: str  # Read, Write, Describe, DescribeConfigs, IdempotentWrite


def _allow(principal: str, resource: str, name: str, operations: list[str], pattern: str = "literal") -> list[Acl]:
    return [Acl(principal, resource, name, pattern, op) for op in operations]


class UnmappedGroupError(ValueError):
    """A producer group has no Kafka principals: no ACL can let its members write, so refuse to print a
    set of ACLs that silently leaves them out."""

    def __init__(self, places: list[str]) -> None:
        super().__init__(
            f"producer groups without Kafka principals (Kafka ACLs have no groups): {'; '.join(places)}; "
            "expected each under kafka_principals.producer_groups, mapped to the principals its members connect "
            "as (e.g. producer_groups: {payments-producers: ['User:pos-1', 'User:pos-2']}), or the dataset's "
            "producers.kafka_users listing every Kafka principal that may write it")
        self.places = places


def consumer_group_prefix(region: str) -> str:
    return f"{region}.consumer."


def policy_acls(policy: Policy, app: str | None = None) -> list[Acl]:
    """Every ACL the policy implies, sorted, without duplicates; :class:`UnmappedGroupError` when a
    producer group cannot be mapped to Kafka principals."""
    unmapped = policy.unmapped_producer_groups()
    if unmapped:
        raise UnmappedGroupError(unmapped)
    region = policy.region
    names = RegionTopics(region, app)
    worker = policy.kafka_principals.worker or f"User:{region}-residency"
    group = app or app_id(region)
    acls: list[Acl] = []
    acls += _allow(worker, "topic", f"{region}.", ["Read", "Write", "Describe", "DescribeConfigs"], "prefixed")
    acls += _allow(worker, "group", group, ["Read", "Describe"])
    acls += _allow(worker, "group", screen_group(group), ["Read", "Describe"])
    acls += _allow(worker, "transactional-id", group, ["Write", "Describe"], "prefixed")
    acls += _allow(worker, "cluster", "", ["IdempotentWrite", "Describe"])
    for approver in policy.kafka_principals.approvers:
        acls += _allow(approver, "topic", names.approvals, ["Write", "Describe"])
    for dataset_name, dataset in policy.datasets.items():
        producers = dataset.producers.kafka_principals(policy.kafka_principals.producer_groups) \
            if dataset.producers else []
        for producer in producers:
            acls += _allow(producer, "topic", names.raw(dataset_name), ["Write", "Describe"])
            acls += _allow(producer, "cluster", "", ["IdempotentWrite"])
        readers = [(c, names.cleared(dataset_name)) for c in dataset.consumers]
        readers += [(c, egress_topic(region, dataset_name, profile_name, profile.topic))
                    for profile_name, profile in dataset.egress.items() for c in profile.consumers]
        for consumer, topic in readers:
            acls += _allow(consumer, "topic", topic, ["Read", "Describe"])
            acls += _allow(consumer, "group", consumer_group_prefix(region), ["Read"], "prefixed")
    return sorted(set(acls))


_FLAG = {"topic": "--topic", "group": "--group", "transactional-id": "--transactional-id", "cluster": "--cluster"}


def kafka_acls_commands(acls: list[Acl], bootstrap: str = "$KAFKA_BOOTSTRAP_SERVERS",
                        config: str | None = "$KAFKA_ADMIN_CONFIG") -> list[str]:
    """One ``kafka-acls --add`` per (principal, resource); operations grouped."""
    grouped: dict[tuple[str, str, str, str], list[str]] = {}
    for acl in acls:
        grouped.setdefault((acl.principal, acl.resource, acl.name, acl.pattern), []).append(acl.operation)
    lines = []
    for (principal, resource, name, pattern), operations in grouped.items():
        target = _FLAG[resource] if resource == "cluster" else f"{_FLAG[resource]} '{name}'"
        ops = " ".join(f"--operation {op}" for op in operations)
        conf = f" --command-config {config}" if config else ""
        lines.append(f"kafka-acls --bootstrap-server {bootstrap}{conf} --add --allow-principal '{principal}' "
                     f"{ops} {target} --resource-pattern-type {pattern}")
    return lines


def strimzi_users(acls: list[Acl], cluster: str, namespace: str | None = None,
                  authentication: str = "scram-sha-512") -> list[dict]:
    """One ``KafkaUser`` (kafka.strimzi.io/v1beta2) per principal, with simple authorization."""
    by_user: dict[str, list[Acl]] = {}
    for acl in acls:
        by_user.setdefault(acl.principal, []).append(acl)
    users = []
    for principal, entries in by_user.items():
        grouped: dict[tuple[str, str, str], list[str]] = {}
        for acl in entries:
            grouped.setdefault((acl.resource, acl.name, acl.pattern), []).append(acl.operation)
        rules = []
        for (resource, name, pattern), operations in grouped.items():
            spec: dict = {"type": "transactionalId" if resource == "transactional-id" else resource}
            if resource != "cluster":
                spec.update({"name": name, "patternType": pattern})
            rules.append({"resource": spec, "operations": operations, "host": "*"})
        metadata: dict = {"name": principal.removeprefix("User:"), "labels": {"strimzi.io/cluster": cluster}}
        if namespace:
            metadata["namespace"] = namespace
        users.append({"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaUser", "metadata": metadata,
                      "spec": {"authentication": {"type": authentication},
                               "authorization": {"type": "simple", "acls": rules}}})
    return users


def render_strimzi(users: list[dict]) -> str:
    return yaml.safe_dump_all(users, sort_keys=False)
