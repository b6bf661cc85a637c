"""Record contract, hold conditions and residency checks."""

from __future__ import annotations

import pytest

from pipeline.rules import MISSING, conditions_met, contract_violation, lookup, residency_violation
from schemas.policy import Condition, RecordSchema, ResidencyRule

DOC = {"a": {"b": [10, {"c": "x"}]}, "amount": 12000, "flag": True, "country": "DE"}


@pytest.mark.parametrize(("path", "value"), [
    ("a.b[0]", 10), ("a.b[1].c", "x"), ("amount", 12000), ("a.z", MISSING), ("a.b[5]", MISSING), ("amount.x", MISSING),
])
def test_lookup(path, value):
    assert lookup(DOC, path) is value or lookup(DOC, path) == value


@pytest.mark.parametrize(("schema", "problem"), [
    (RecordSchema(required=["amount"], types={"amount": "number"}), None),
    (RecordSchema(required=["missing.field"]), "required field 'missing.field' is missing"),
    (RecordSchema(types={"amount": "string"}), "field 'amount' should be string"),
    (RecordSchema(types={"flag": "integer"}), "field 'flag' should be integer"),
])
def test_contract(schema, problem):
    assert contract_violation(DOC, schema) == problem


@pytest.mark.parametrize(("op", "value", "met"), [
    (">=", 10000, True), ("<", 10000, False), ("==", 12000, True), ("in", [1, 12000], True),
    ("not_in", [12000], False), ("exists", None, True), ("missing", None, False),
])
def test_when_conditions_are_evaluated_then_they_compare_the_raw_value(op, value, met):
    assert conditions_met(DOC, [Condition(field="amount", op=op, value=value)]) is met


def test_when_a_numeric_condition_meets_a_non_number_then_it_holds_fail_closed():
    assert conditions_met({"amount": "12000"}, [Condition(field="amount", op=">=", value=10000)])


@pytest.mark.parametrize(("doc", "violation"), [
    ({"country": "DE"}, None),
    ({"country": "de "}, None),
    ({"country": "US"}, "jurisdiction in 'country' is not allowed in this region"),
    ({}, "jurisdiction field 'country' is missing"),
    ({"country": 49}, "jurisdiction field 'country' is not a string"),
    ({"country": "D\u0415"}, "jurisdiction in 'country' is not allowed in this region"),  # Cyrillic E
])
def test_when_the_jurisdiction_is_checked_then_missing_or_foreign_is_a_violation(doc, violation):
    assert residency_violation(doc, ResidencyRule(field="country", allowed=["DE", "FR"])) == violation


@pytest.mark.parametrize("value", [True, False, 0, 1, 2.5, "7", None, [], {}])
@pytest.mark.parametrize("expected", ["string", "number", "integer", "boolean", "object", "array", "null"])
def test_when_a_compiled_contract_checks_a_type_then_it_agrees_with_json(value, expected):
    json_kind = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null",
                 list: "array", dict: "object"}[type(value)]
    conforms = json_kind == expected or (expected == "number" and json_kind == "integer")
    problem = contract_violation({"a": {"b": value}}, RecordSchema(required=["a.b"], types={"a.b": expected}))
    assert problem == (None if conforms else f"field 'a.b' should be {expected}")
