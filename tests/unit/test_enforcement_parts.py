"""Attestations, ACL rendering, the namespace and rack guards: pure parts, no broker."""

from __future__ import annotations

import asyncio

import pytest
import yaml
from prometheus_client import CollectorRegistry

from pipeline.acls import UnmappedGroupError, kafka_acls_commands, policy_acls, strimzi_users
from pipeline.cli import main
from pipeline.attestation import Attestor, verify_record
from pipeline.audit import generate_signing_key, load_public_keys, load_signing_key
from pipeline.guards import RackFence, namespace_problems, rack_problems
from pipeline.metrics import Metrics
from pipeline.policy import PolicyError, parse_policy

POLICY = b"""
region: eu
egress_regions: [us]
kafka_principals: {worker: "User:eu-residency", approvers: ["User:eu-approvers"]}
datasets:
  payments:
    partitions: 1
    producers: {principals: [svc-payments], kafka_users: ["User:pay-app"]}
    consumers: ["User:analytics"]
    egress:
      us-analytics: {region: us, consumers: ["User:us-analytics"]}
"""


def _attestor() -> tuple[Attestor, dict]:
    signer = load_signing_key(generate_signing_key())
    return Attestor(signer), load_public_keys([signer.public_key_pem()])


def _headers(attestor: Attestor, topic: str, key: bytes | None, value: bytes) -> list[tuple[str, bytes]]:
    base = [("event-id", b"e1"), ("policy-hash", b"sha256:abc")]
    return [*base, ("residency-attestation", attestor.header(topic, "e1", "sha256:abc", key, value))]


def test_when_a_record_is_attested_then_it_verifies_and_any_change_does_not():
    attestor, trusted = _attestor()
    headers = _headers(attestor, "eu.cleared.payments", b"k", b'{"a":1}')
    assert verify_record("eu.cleared.payments", b"k", b'{"a":1}', headers, trusted).ok
    assert verify_record("eu.cleared.payments", b"k", b'{"a":2}', headers, trusted).status == "bad_signature"
    assert verify_record("eu.cleared.payments", None, b'{"a":1}', headers, trusted).status == "bad_signature"
    assert verify_record("eu.egress.x.payments", b"k", b'{"a":1}', headers, trusted).status == "bad_signature"
    swapped = [(k, b"e2" if k == "event-id" else v) for k, v in headers]
    assert verify_record("eu.cleared.payments", b"k", b'{"a":1}', swapped, trusted).status == "bad_signature"


def test_when_a_record_is_unsigned_or_signed_by_another_key_then_it_is_flagged():
    attestor, _ = _attestor()
    _, other = _attestor()
    value = b'{"a":1}'
    assert verify_record("t", None, value, [("event-id", b"e1")], other).status == "unsigned"
    assert verify_record("t", None, value, _headers(attestor, "t", None, value), other).status == "unknown_key"
    garbage = [("event-id", b"e1"), ("policy-hash", b"h"), ("residency-attestation", b"v1:zz:not base64!")]
    assert verify_record("t", None, value, garbage, other).status == "malformed"


def test_when_acls_are_derived_then_producers_write_only_raw_and_consumers_read_only_their_topics():
    acls = policy_acls(parse_policy(POLICY).policy)
    by = lambda p: {(a.resource, a.name, a.pattern, a.operation) for a in acls if a.principal == p}  # noqa: E731
    assert by("User:pay-app") == {("topic", "eu.raw.payments", "literal", "Write"),
                                  ("topic", "eu.raw.payments", "literal", "Describe"),
                                  ("cluster", "", "literal", "IdempotentWrite")}
    assert {a[1] for a in by("User:analytics") if a[0] == "topic"} == {"eu.cleared.payments"}
    assert {a[1] for a in by("User:us-analytics") if a[0] == "topic"} == {"eu.egress.us-analytics.payments"}
    assert by("User:eu-approvers") == {("topic", "eu.approvals", "literal", "Write"),
                                       ("topic", "eu.approvals", "literal", "Describe")}
    worker = by("User:eu-residency")
    assert ("topic", "eu.", "prefixed", "Write") in worker and ("group", "eu.residency", "literal", "Read") in worker
    assert ("group", "eu.residency.screen", "literal", "Read") in worker  # the screen stage's own consumer
    assert ("transactional-id", "eu.residency", "prefixed", "Write") in worker
    assert not any(a.operation == "Write" and a.name.startswith("eu.cleared") for a in acls
                   if a.principal != "User:eu-residency")


def test_when_acls_are_rendered_then_commands_and_kafka_users_carry_every_rule():
    acls = policy_acls(parse_policy(POLICY).policy)
    commands = kafka_acls_commands(acls, "b:9092", None)
    assert "kafka-acls --bootstrap-server b:9092 --add --allow-principal 'User:pay-app' --operation Describe " \
           "--operation Write --topic 'eu.raw.payments' --resource-pattern-type literal" in commands
    users = {u["metadata"]["name"]: u for u in yaml.safe_load_all(yaml.safe_dump_all(strimzi_users(acls, "kc")))}
    assert set(users) == {"eu-residency", "eu-approvers", "pay-app", "analytics", "us-analytics"}
    rules = users["pay-app"]["spec"]["authorization"]["acls"]
    assert {"resource": {"type": "topic", "name": "eu.raw.payments", "patternType": "literal"},
            "operations": ["Describe", "Write"], "host": "*"} in rules
    assert users["eu-residency"]["metadata"]["labels"] == {"strimzi.io/cluster": "kc"}
    assert sum(len(u["spec"]["authorization"]["acls"]) for u in users.values()) == len(
        {(a.principal, a.resource, a.name, a.pattern) for a in acls})


GROUPS_POLICY = b"""
region: eu
kafka_principals:
  producer_groups: {payments-producers: ["User:pos-1", "User:pos-2"], desk: ["User:desk-app"]}
datasets:
  payments:
    partitions: 1
    producers: {groups: [payments-producers]}
  tickets:
    partitions: 1
    producers: {principals: [svc-tickets], groups: [desk]}
  orders:
    partitions: 1
    producers: {groups: [unmapped-group], kafka_users: ["User:orders-app"]}
"""


def test_when_a_dataset_is_granted_to_a_group_then_its_mapped_kafka_principals_write_raw():
    acls = policy_acls(parse_policy(GROUPS_POLICY).policy)
    writers = lambda topic: {a.principal for a in acls if a.name == topic and a.operation == "Write"}  # noqa: E731
    assert writers("eu.raw.payments") == {"User:pos-1", "User:pos-2"}
    assert writers("eu.raw.tickets") == {"User:svc-tickets", "User:desk-app"}
    assert writers("eu.raw.orders") == {"User:orders-app"}  # kafka_users: the explicit list, groups need no mapping
    commands = kafka_acls_commands(acls, "b:9092", None)
    assert "kafka-acls --bootstrap-server b:9092 --add --allow-principal 'User:pos-2' --operation Describe " \
           "--operation Write --topic 'eu.raw.payments' --resource-pattern-type literal" in commands
    users = {u["metadata"]["name"]: u for u in strimzi_users(acls, "kc")}
    assert {"resource": {"type": "topic", "name": "eu.raw.payments", "patternType": "literal"},
            "operations": ["Describe", "Write"], "host": "*"} in users["pos-1"]["spec"]["authorization"]["acls"]


def test_when_a_producer_group_has_no_kafka_principals_then_acls_refuse_and_name_the_place():
    text = GROUPS_POLICY.replace(b", desk: [\"User:desk-app\"]", b"")
    policy = parse_policy(text).policy
    assert policy.unmapped_producer_groups() == ["datasets.tickets.producers.groups[0]: 'desk'"]
    with pytest.raises(UnmappedGroupError) as refused:
        policy_acls(policy)
    message = str(refused.value)
    assert "datasets.tickets.producers.groups[0]: 'desk'" in message and "Kafka ACLs have no groups" in message
    assert "kafka_principals.producer_groups" in message and "producers.kafka_users" in message


def test_when_a_group_is_unmapped_then_residency_acls_exits_1_naming_the_file_and_policy_check_warns(tmp_path, capsys):
    path = tmp_path / "policy.yaml"
    path.write_bytes(GROUPS_POLICY.replace(b", desk: [\"User:desk-app\"]", b""))
    assert main(["acls", "--policy", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"{path}: producer groups without Kafka principals")
    assert main(["policy", "check", str(path)]) == 0
    assert "WARNING: datasets.tickets.producers.groups[0]: 'desk' has no Kafka principals" in capsys.readouterr().err


def test_when_a_producer_group_maps_to_nobody_or_a_bad_principal_then_the_policy_is_refused():
    for bad in (b"desk: []", b'desk: ["desk-app"]'):
        with pytest.raises(PolicyError):
            parse_policy(GROUPS_POLICY.replace(b'desk: ["User:desk-app"]', bad))


def test_when_a_topic_is_outside_the_region_then_the_namespace_guard_names_it():
    assert namespace_problems("eu", ["eu.raw.a", "eu.residency-held-changelog", "us.cleared.a"]) == [
        "topic us.cleared.a is outside the region's namespace (every topic must start with 'eu.')"]
    assert namespace_problems("eu", ["europe.raw.a"])  # a prefix of the name is not the region


def test_when_racks_are_listed_then_brokers_outside_them_and_without_one_are_problems():
    brokers = [{"node_id": 1, "host": "h", "port": 1, "rack": "eu-1a"}, {"node_id": 2, "host": "h", "port": 2, "rack": None}]
    assert rack_problems([], brokers) == []
    assert rack_problems(["eu-1a"], brokers) == [
        "broker 2 at h:2 has rack None, which is not among the policy's racks ['eu-1a']"]


def test_when_a_disallowed_broker_appears_then_the_fence_closes_and_the_alert_rises_until_it_leaves():
    metrics = Metrics(CollectorRegistry())
    gauge = lambda: metrics.registry.get_sample_value("residency_disallowed_broker_rack")  # noqa: E731
    good = [{"node_id": 1, "rack": "eu-1a"}]
    bad = [*good, {"node_id": 9, "rack": "us-1a"}, {"node_id": 10, "rack": None}]

    async def run() -> list[object]:
        fence = RackFence(["eu-1a"], metrics.disallowed_broker_rack)
        seen: list[object] = [fence.observe(good), fence.closed, gauge()]
        seen += [fence.observe(bad), fence.closed, gauge(), fence.observe(bad)]
        waiting = asyncio.ensure_future(fence.wait_open())
        await asyncio.sleep(0)  # one turn of the loop: the waiter runs and blocks
        seen.append(waiting.done())
        seen += [fence.observe(good), fence.closed, gauge(), fence.problems]
        await asyncio.wait_for(waiting, 1)  # the gate opened
        return seen

    assert asyncio.run(run()) == [None, False, 0.0,
                                  "closed", True, 2.0, None, False,
                                  "opened", False, 0.0, []]
    assert Metrics(CollectorRegistry()).registry.get_sample_value("residency_disallowed_broker_rack") == 0.0
