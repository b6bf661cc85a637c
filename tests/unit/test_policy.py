"""Policy loading: valid files load with a stable hash; errors name the file, the path and the expectation."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline.policy import PolicyError, load_policy, parse_policy
from tests.conftest import EXAMPLE_POLICY

MINIMAL = b"""
region: eu
datasets:
  orders:
    partitions: 2
    producers: {principals: [svc-orders]}
"""


def test_when_the_example_policy_loads_then_its_hash_is_the_sha256_of_the_file():
    loaded = load_policy(EXAMPLE_POLICY)
    assert loaded.hash == "sha256:" + hashlib.sha256(EXAMPLE_POLICY.read_bytes()).hexdigest()
    assert set(loaded.policy.datasets) == {"payments", "tickets"}


def test_when_a_minimal_policy_loads_then_defaults_apply():
    dataset = parse_policy(MINIMAL).policy.datasets["orders"]
    assert dataset.partitions == 2 and dataset.scan_unlisted and dataset.unexpected_pii == "mask"


@pytest.mark.parametrize(("text", "expected"), [
    (b"region: eu\ndatasets: {orders: {partitions: 0}}", "p.yaml: datasets.orders.partitions: Input should be greater than or equal to 1"),
    (b"region: eu\ndatasets: {orders: {partitions: 1, masking: [{path: a, strategy: mangle}]}}",
     "p.yaml: datasets.orders.masking[0]: unknown masking strategy 'mangle'"),
    (b"region: eu\ndatasets: {orders: {partitions: 1, colour: red}}", "p.yaml: datasets.orders.colour: Extra inputs are not permitted"),
    (b"region: EU\ndatasets: {orders: {partitions: 1}}", "p.yaml: region: String should match pattern"),
    (b"region: eu\ndatasets: {}", "p.yaml: datasets: Dictionary should have at least 1 item"),
    (b"region: eu\nregion: us\ndatasets: {orders: {partitions: 1}}", "p.yaml (line 2, column 1): duplicate key 'region'"),
    (b"region: [eu\n", "p.yaml (line 2, column 1)"),
    (b"- just a list", "p.yaml: (top level): expected a mapping"),
    (b"region: eu\ndatasets: {orders: {partitions: 1, identity: off, masking: [{path: a, strategy: hash, params: {key: nope}}]}}",
     "uses key 'nope', which is not declared under 'keys'"),
    (b"region: eu\ndatasets: {orders: {partitions: 1, hold: [{name: big, when: [{field: amount, op: '>', value: lots}]}]}}",
     "op '>' needs a number value"),
    (b"region: eu\ndatasets: {orders: {partitions: 1, residency: {field: c, allowed: [germany]}}}",
     "p.yaml: datasets.orders.residency.allowed[0]: String should match pattern"),
])
def test_when_the_policy_is_wrong_then_the_error_names_file_path_and_expectation(text, expected):
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml")
    assert expected in str(caught.value)


def test_when_a_masking_parameter_is_unknown_then_loading_fails():
    text = b"region: eu\ndatasets: {orders: {partitions: 1, masking: [{path: a, strategy: partial, params: {keep_lats: 4}}]}}"
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml")
    assert "p.yaml: datasets.orders.masking[0]" in str(caught.value)
    assert "keep_lats" in str(caught.value)


def test_when_the_file_is_missing_then_the_error_names_it(tmp_path: Path):
    with pytest.raises(PolicyError, match="nope.yaml: cannot read the policy file"):
        load_policy(tmp_path / "nope.yaml")
